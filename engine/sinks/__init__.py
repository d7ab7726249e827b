"""Sink stage: JetStream publisher, outbox, PostgreSQL store and migrations, Redis cache."""
