-- v1: the earnings calendar, its change log and its sync runs (plain tables, no partitions).
--
-- Applied by the engine (engine/earnings_store.py: migrate_earnings) inside the migration
-- transaction, under an advisory lock, recorded in ingestion_schema_migrations under the table
-- name (its own version line, independent of market_data's). Variables (quoted by the engine;
-- with psql pass them with -v):
--   :"table"          the calendar table (config earnings.table, default earnings_calendar)
--   :"changes_table"  <table>_changes        :"syncs_table"  <table>_syncs
--   :"date_index"     <table>_date_idx       :"changes_index" <table>_changes_symbol_idx
--   :"syncs_index"    <table>_syncs_date_idx
-- e.g. psql -v table=earnings_calendar -v changes_table=earnings_calendar_changes \
--   -v syncs_table=earnings_calendar_syncs -v date_index=earnings_calendar_date_idx \
--   -v changes_index=earnings_calendar_changes_symbol_idx \
--   -v syncs_index=earnings_calendar_syncs_date_idx \
--   -f schemas/earnings/pg_v001_earnings_calendar.sql
--
-- One row per (symbol, event_date): the sync upserts on that key. A rescheduled report (the
-- same symbol's unreported event reappearing at another date within 45 days) *moves* its row to
-- the new date rather than adding one; every move and every change of start time is appended to
-- <table>_changes. Queries served:
--   who reports on a day / in a window    WHERE event_date BETWEEN $1 AND $2  -> date index
--   a symbol's reports                    WHERE symbol = $1                  -> primary key
CREATE TABLE IF NOT EXISTS :"table" (
    symbol                text             NOT NULL,
    event_date            date             NOT NULL,  -- New York date of the report
    event_time            timestamptz      NOT NULL,  -- start (UTC); a placeholder for TMC
    timing                text             NOT NULL
                          CHECK (timing IN ('BMO', 'AMC', 'DMH', 'TMC')),
    company_name          text,
    event_name            text,
    market_cap            bigint,
    eps_estimate          double precision,
    eps_reported          double precision,          -- NULL until reported
    surprise_pct          double precision,          -- percent; NULL until reported
    source                text             NOT NULL,  -- yahoo_calendar | yahoo_quotesummary
    first_seen            timestamptz      NOT NULL DEFAULT now(),
    last_updated          timestamptz      NOT NULL DEFAULT now(),  -- last change of any value
    announced_at          timestamptz,   -- "reports today" event acknowledged by JetStream
    reported_announced_at timestamptz,   -- "EPS reported" event acknowledged by JetStream
    PRIMARY KEY (symbol, event_date)
);

CREATE INDEX IF NOT EXISTS :"date_index" ON :"table" (event_date);

CREATE TABLE IF NOT EXISTS :"changes_table" (
    id          bigserial   PRIMARY KEY,
    symbol      text        NOT NULL,
    old_date    date        NOT NULL,
    new_date    date        NOT NULL,
    old_time    timestamptz NOT NULL,
    new_time    timestamptz NOT NULL,
    kind        text        NOT NULL CHECK (kind IN ('rescheduled', 'time_changed')),
    source      text        NOT NULL,
    changed_at  timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX IF NOT EXISTS :"changes_index" ON :"changes_table" (symbol, changed_at);

CREATE TABLE IF NOT EXISTS :"syncs_table" (
    id           bigserial   PRIMARY KEY,
    sync_date    date        NOT NULL,  -- the New York "today" of the window
    trigger      text        NOT NULL CHECK (trigger IN ('schedule', 'manual')),
    covers       timestamptz NOT NULL,  -- the newest scheduled slot this run accounts for
    started_at   timestamptz NOT NULL,
    finished_at  timestamptz NOT NULL,
    status       text        NOT NULL CHECK (status IN ('complete', 'failed')),
    source       text,
    summary      jsonb       NOT NULL
);

CREATE INDEX IF NOT EXISTS :"syncs_index" ON :"syncs_table" (sync_date, status);

COMMENT ON TABLE :"table" IS
    'Earnings calendar (one row per symbol and report date), maintained by ingestion-agent';
