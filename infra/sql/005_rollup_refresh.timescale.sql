-- Incremental rollup refresh on TimescaleDB. The sink marks every UTC hour a batch changed in rollup_dirty,
-- in the same transaction as the minute rows; the rollup job calls refresh_continuous_aggregate() for just
-- those hours (outside a transaction, as Timescale requires), so corrections older than the policies'
-- start_offset reach the continuous aggregates too. Same table as on plain PostgreSQL.
CREATE SEQUENCE IF NOT EXISTS rollup_dirty_version;

CREATE TABLE IF NOT EXISTS rollup_dirty (
    hour    timestamptz PRIMARY KEY,
    -- Taken again from the sequence at every mark, so the job can tell a mark it refreshed from a newer one.
    version bigint      NOT NULL DEFAULT nextval('rollup_dirty_version'),
    marked_at timestamptz NOT NULL DEFAULT now()
);
