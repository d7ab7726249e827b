"""Yahoo source stage: transport, client (cookie + crumb), rate limit, breaker, guard, symbols."""
