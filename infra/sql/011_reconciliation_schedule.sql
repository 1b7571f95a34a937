-- Scheduled reconciliation runs are recorded with the schedule that asked for them ('hourly', 'daily'; NULL for a
-- manual run or a late-click recount), so any reconciler instance can tell which scheduled ranges are still to do:
-- one missed (the role was down) or failed is made up, and one another instance did is not done twice.
ALTER TABLE reconciliation_runs ADD COLUMN IF NOT EXISTS schedule text;
CREATE INDEX IF NOT EXISTS reconciliation_runs_schedule ON reconciliation_runs (schedule, range_from) WHERE schedule IS NOT NULL;

-- Since when the schedule has been kept: set by the first reconciler role to start on this database. Scheduled runs
-- due from then on (within Reconciler:MakeUpWithin) are made up if missing; earlier ones never were the role's to do.
CREATE TABLE IF NOT EXISTS reconciliation_schedule (
    schedule   text        PRIMARY KEY,
    kept_since timestamptz NOT NULL
);
