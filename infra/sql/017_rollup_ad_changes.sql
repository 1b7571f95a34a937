-- The (hour, ad) rollup marks as a log of changes, one row per writer transaction and hour (issue #23). An upsert of
-- one mark per minute row written (rollup_dirty_ads, 015) cost the sink more than half its rate: 87,480 against
-- 184,803 rows/s without the marks in the sink benchmark. A writer now appends one row per UTC hour it changes, with
-- the ads it changed in that hour (018_rollup_ad_change_refresh.plain.sql), in the transaction that changes the minutes;
-- the refresh job takes rows in id order, recomputes their distinct (hour, ad) pairs and deletes exactly the rows it
-- took. Nothing is updated in place, so writers never wait on the job or on each other here, and a change committed
-- while the job runs is a row it did not take, left for the next run. On TimescaleDB writers mark whole hours in
-- rollup_dirty (continuous aggregates refresh by time) and this table stays empty.
CREATE TABLE IF NOT EXISTS rollup_ad_changes (
    id     bigint      GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
    hour   timestamptz NOT NULL,
    -- cardinality(ad_ids), kept apart so taking rows up to a number of ads does not read the arrays.
    ads    integer     NOT NULL,
    ad_ids bigint[]    NOT NULL
);
-- Stored as written: compressing 10,000 ids per sink batch cost more than the bytes it saves in a table that is
-- emptied every refresh.
ALTER TABLE rollup_ad_changes ALTER COLUMN ad_ids SET STORAGE EXTERNAL;
CREATE INDEX IF NOT EXISTS rollup_ad_changes_hour ON rollup_ad_changes (hour);

-- Locked first: an older writer still running (a rolling deploy, a second sink) may hold marks it has not committed.
-- The lock waits for them, so the copy below reads them; read from a snapshot taken before their commit, they would be
-- dropped with the table. Writers that come later wait here and then fail on the dropped table, and retry.
LOCK TABLE rollup_dirty_ads IN ACCESS EXCLUSIVE MODE;
INSERT INTO rollup_ad_changes (hour, ads, ad_ids)
SELECT hour, count(*), array_agg(ad_id ORDER BY ad_id) FROM rollup_dirty_ads GROUP BY hour ORDER BY hour;
DROP TABLE rollup_dirty_ads;

-- The hours in [p_from, p_to) whose rollups may lag their minutes: marked whole in rollup_dirty, or with a change of
-- one of their ads in rollup_ad_changes (one row per writer transaction and hour since the last refresh: a few
-- hundred rows at most while the refresh keeps up, so a plain read of the range, where 015 skipped from hour to hour
-- through hundreds of thousands of (hour, ad) marks). The query API reads these hours from the minutes.
CREATE OR REPLACE FUNCTION dirty_rollup_hours(p_from timestamptz, p_to timestamptz)
RETURNS SETOF timestamptz LANGUAGE sql STABLE AS $$
    SELECT hour FROM rollup_dirty WHERE hour >= p_from AND hour < p_to
    UNION
    SELECT hour FROM rollup_ad_changes WHERE hour >= p_from AND hour < p_to
$$;
