-- Indexes for the query API on TimescaleDB: the hypertable already has an index on minute (created with it), and the
-- continuous aggregates index (ad_id, bucket) on their materialization hypertables (timescaledb.create_group_indexes),
-- so nothing is added; this keeps the migration numbering identical on both flavors.
SELECT 1;
