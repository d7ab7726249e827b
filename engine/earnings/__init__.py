"""The earnings feature: calendar source, store, flags and fundamentals, events, schedule, job."""
