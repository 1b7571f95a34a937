-- When the reconciler last wrote a minute row (its count recounted from clicks.raw). The sink then leaves the row to
-- the reconciler: a final the aggregator sends again after a restart or rebalance (it re-emits the windows it
-- rebuilt from its impression store, newer by the clock) would otherwise put back the count the reconciler corrected.
ALTER TABLE ad_clicks_minute ADD COLUMN IF NOT EXISTS corrected_at timestamptz;
