-- Incremental rollups (issue #22). At 10,000,000 ads the current hour holds ~11 million minute rows, and recomputing it
-- (and the day's daily rows from every hourly row of the day) every 30 s took 387 s a cycle: the rollups fell behind
-- for good. Where the rollups are plain tables, a writer now marks each (hour, ad) it changes, in the transaction that
-- changes the minutes, and the refresh job recomputes just those ads' hours (016_incremental_rollups.plain.sql). Where
-- TimescaleDB's continuous aggregates are the rollups they refresh by time only, so there writers still mark whole
-- hours in rollup_dirty (016_incremental_rollups.timescale.sql) and this table stays empty.
CREATE TABLE IF NOT EXISTS rollup_dirty_ads (
    hour    timestamptz NOT NULL,
    ad_id   bigint      NOT NULL,
    -- Taken again from the sequence at every mark, so the job can tell a mark it refreshed from a newer one.
    version bigint      NOT NULL DEFAULT nextval('rollup_dirty_version'),
    PRIMARY KEY (hour, ad_id)
) WITH (fillfactor = 50);

-- The hours in [p_from, p_to) whose rollups may lag their minutes: marked whole in rollup_dirty, or with an ad marked
-- in rollup_dirty_ads (read by skipping from hour to hour along its key: a busy hour holds hundreds of thousands of
-- marks). The query API reads these hours from the minutes.
CREATE OR REPLACE FUNCTION dirty_rollup_hours(p_from timestamptz, p_to timestamptz)
RETURNS SETOF timestamptz LANGUAGE sql STABLE AS $$
    SELECT hour FROM rollup_dirty WHERE hour >= p_from AND hour < p_to
    UNION
    (WITH RECURSIVE marked (hour) AS (
        (SELECT hour FROM rollup_dirty_ads WHERE hour >= p_from AND hour < p_to ORDER BY hour LIMIT 1)
        UNION ALL
        SELECT (SELECT d.hour FROM rollup_dirty_ads d WHERE d.hour > marked.hour AND d.hour < p_to ORDER BY d.hour LIMIT 1)
        FROM marked
        WHERE marked.hour IS NOT NULL)
    SELECT hour FROM marked WHERE hour IS NOT NULL)
$$;
