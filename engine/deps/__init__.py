"""One adapter per external dependency (NATS, PostgreSQL, Redis): how to connect, how to ping,
and how its library's exceptions become :mod:`engine.errors` (one context manager each).

Everything that talks to a dependency - the publisher, the store, the cache, the earnings job,
the CLI commands and the health checks - goes through these, so a connection is made, probed and
translated one way. Yahoo's adapter is :mod:`engine.source.client` with its transports.
"""
