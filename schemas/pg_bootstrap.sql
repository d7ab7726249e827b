-- Schema-version bookkeeping for the engine's PostgreSQL tables (applied before any migration).
--
-- One row per (table, migration version) applied. `mode` is 'native' (daily range partitions
-- managed by the engine) or 'timescale' (hypertable with retention/compression policies); it is
-- fixed when the table is first created and never changes by itself afterwards.
--
-- Applied by `ingestion-agent db migrate` and at start-up, inside the migration transaction and
-- under a database-wide advisory lock (engine.sinks.migrations.bootstrap), so concurrent
-- start-ups, of the same table or of different ones, cannot race. Stand-alone use:
--   psql -f schemas/pg_bootstrap.sql
CREATE TABLE IF NOT EXISTS ingestion_schema_migrations (
    table_name  text        NOT NULL,
    version     integer     NOT NULL,
    description text        NOT NULL,
    mode        text        NOT NULL CHECK (mode IN ('native', 'timescale')),
    applied_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (table_name, version)
);
