-- v1: the quote table, native PostgreSQL (no TimescaleDB): daily range partitions on market_time.
--
-- Variables (the engine substitutes them, quoted; with psql pass them with -v):
--   :"table"       the table name (config postgres.table, default market_data)
--   :"time_index"  name of the BRIN index on market_time (the engine uses <table>_time_brin)
-- e.g. psql -v table=market_data -v time_index=market_data_time_brin \
--           -f schemas/pg_v001_market_data.native.sql
--
-- Partitions (one per UTC day) are created ahead and dropped after the retention period, none
-- here: by pg_partman if the extension is installed in the database when the engine creates the
-- table (it registers it: <table>_pYYYY_MM_DD, plus <table>_default), else by the engine's own
-- maintenance (engine/partitions.py: <table>_pYYYYMMDD).
--
-- Queries served:
--   latest quotes of a symbol      WHERE symbol = $1 ORDER BY market_time DESC LIMIT n
--                                  -> primary key (symbol, market_time), scanned backwards
--   a symbol over a time range     WHERE symbol = $1 AND market_time >= $2 AND market_time < $3
--                                  -> primary key + partition pruning
--   everything in a time range     WHERE market_time >= $1 AND market_time < $2
--                                  -> partition pruning + BRIN on market_time (rows arrive in
--                                     market-time order, so BRIN stays tight and costs ~nothing
--                                     on insert, unlike a second B-tree)
-- The primary key is also the de-duplication key: one row per distinct quote (symbol, market
-- time); the writer inserts with ON CONFLICT DO NOTHING, so re-ingesting a quote is a no-op.
CREATE TABLE IF NOT EXISTS :"table" (
    market_time    timestamptz      NOT NULL,  -- the quote's regularMarketTime (UTC)
    symbol         text             NOT NULL,
    price          double precision NOT NULL,
    volume         bigint           NOT NULL,
    change_percent double precision,
    currency       text,
    exchange       text,
    market_state   text             NOT NULL,
    ingest_time    timestamptz      NOT NULL,  -- when the engine fetched it
    correlation_id uuid,                       -- NULL only if the engine got a malformed id
    PRIMARY KEY (symbol, market_time)
) PARTITION BY RANGE (market_time);

CREATE INDEX IF NOT EXISTS :"time_index" ON :"table" USING brin (market_time)
    WITH (pages_per_range = 32);

COMMENT ON TABLE :"table" IS
    'Raw quotes, one row per (symbol, market_time); daily range partitions, managed by ingestion-agent';
