-- Dropping days of minutes first brings their marked rollups up to date, under the rollup refreshes' lock.
--
-- The refresh job recomputes a marked (hour, ad) or hour from its minutes unless the hour is older than the minute
-- retention by its own clock when its run began. A run that lasts long (a backlog) or a second sink whose clock is
-- behind could still take the marks of a day that retention, on time, has dropped: recomputed from no minutes, the
-- hour's clicks would leave its rollups, which outlive the minutes by a year. Here the drop:
--   1. takes the refreshes' advisory lock (a refresh under way finishes first; none starts until this commits);
--   2. locks the days it drops against writes (SHARE: a writer's minutes and their marks commit before, or wait);
--   3. recomputes, from their minutes, the rollups of every hour of those days still marked, whole (rollup_dirty) or
--      for its changed ads (rollup_ad_changes);
--   4. deletes every mark of an hour before the end of the last day it may drop (a marked hour of a day already gone
--      has no minutes to recompute from: its mark is deleted, its rollups left as they are), and drops the days.
-- All in one transaction: no mark of a dropped minute is left for a refresh to take, and none is lost untaken.
CREATE OR REPLACE FUNCTION drop_ad_clicks_minute_partitions(p_before timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    parts    text[];
    days     timestamptz[];
    part     text;
    marked   record;
    -- Days ending at or before p_before go: every hour before the last such end loses its minutes.
    boundary constant timestamptz := date_trunc('day', p_before AT TIME ZONE 'UTC') AT TIME ZONE 'UTC';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('refresh_ad_clicks_rollups'));
    SELECT coalesce(array_agg(p.relname ORDER BY p.relname), '{}'), coalesce(array_agg(p.day ORDER BY p.relname), '{}')
    INTO parts, days
    FROM (
        SELECT c.relname::text AS relname, to_date(substring(c.relname from '[0-9]{8}$'), 'YYYYMMDD')::timestamp AT TIME ZONE 'UTC' AS day
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'ad_clicks_minute'::regclass
          AND c.relname ~ '^ad_clicks_minute_p[0-9]{8}$') p
    WHERE p.day + interval '1 day' <= p_before;

    FOREACH part IN ARRAY parts LOOP
        EXECUTE format('LOCK TABLE %I IN SHARE MODE', part);
    END LOOP;

    FOR marked IN
        SELECT hour FROM rollup_dirty
        WHERE hour < boundary AND date_trunc('day', hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' = ANY (days)
        ORDER BY hour
    LOOP
        PERFORM refresh_ad_clicks_rollup_hours(marked.hour, marked.hour + interval '1 hour');
    END LOOP;
    FOR marked IN
        SELECT c.hour, array_agg(DISTINCT a.ad_id) AS ad_ids
        FROM rollup_ad_changes c, unnest(c.ad_ids) AS a (ad_id)
        WHERE c.hour < boundary AND date_trunc('day', c.hour AT TIME ZONE 'UTC') AT TIME ZONE 'UTC' = ANY (days)
        GROUP BY c.hour
        ORDER BY c.hour
    LOOP
        PERFORM refresh_ad_clicks_rollups_for_ads(marked.ad_ids, marked.hour, marked.hour + interval '1 hour');
    END LOOP;
    DELETE FROM rollup_ad_changes WHERE hour < boundary;
    DELETE FROM rollup_dirty WHERE hour < boundary;

    FOREACH part IN ARRAY parts LOOP
        EXECUTE format('DROP TABLE %I', part);
    END LOOP;
    RETURN cardinality(parts);
END $$;
