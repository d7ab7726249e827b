-- v1: the quote table as a TimescaleDB hypertable (used when the timescaledb extension exists).
--
-- Variables (the engine substitutes them, quoted; with psql pass them with -v):
--   :"table" / :'table'   the table name (config postgres.table, default market_data)
--   :'retention'          retention interval, e.g. '7 days' (config postgres.retention_days)
--   :'compress_after'     age after which chunks are compressed, e.g. '2 days'
-- e.g. psql -v table=market_data -v retention='7 days' -v compress_after='2 days' \
--           -f schemas/pg_v001_market_data.timescale.sql
--
-- Same columns and keys as the native variant (see pg_v001_market_data.native.sql). One chunk
-- per day; create_hypertable adds a B-tree on (market_time DESC) for time-range queries, the
-- primary key (symbol, market_time) serves per-symbol queries and de-duplication.
--
-- Compression: quotes are append-only and older days are read by range scans, so chunks older
-- than compress_after are compressed, segmented by symbol and ordered by time (typically ~10x
-- smaller). compress_after leaves slack for late rows: the writer skips a quote equal to the last
-- one it stored for the symbol, so overnight/weekend repeats of the closing quote never touch a
-- compressed chunk.
CREATE TABLE IF NOT EXISTS :"table" (
    market_time    timestamptz      NOT NULL,
    symbol         text             NOT NULL,
    price          double precision NOT NULL,
    volume         bigint           NOT NULL,
    change_percent double precision,
    currency       text,
    exchange       text,
    market_state   text             NOT NULL,
    ingest_time    timestamptz      NOT NULL,
    correlation_id uuid,
    PRIMARY KEY (symbol, market_time)
);

SELECT create_hypertable(:'table', 'market_time',
                         chunk_time_interval => INTERVAL '1 day',
                         if_not_exists => TRUE);

ALTER TABLE :"table" SET (
    timescaledb.compress,
    timescaledb.compress_segmentby = 'symbol',
    timescaledb.compress_orderby = 'market_time DESC'
);

SELECT add_compression_policy(:'table', CAST(:'compress_after' AS interval), if_not_exists => TRUE);
SELECT add_retention_policy(:'table', CAST(:'retention' AS interval), if_not_exists => TRUE);

COMMENT ON TABLE :"table" IS
    'Raw quotes, one row per (symbol, market_time); TimescaleDB hypertable, managed by ingestion-agent';
