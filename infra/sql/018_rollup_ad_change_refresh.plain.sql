-- Marks and refresh of the (hour, ad) log on plain PostgreSQL (see 017_rollup_ad_changes.sql).

-- Records a change of minutes for the rollups: entry i is ad p_ad_ids[i] in the UTC hour p_hours[i]. One row per
-- hour, whatever the number of ads. Run it in the transaction that changes the minutes, so the row exists exactly when
-- the change does, even if the writer dies right after its commit.
CREATE OR REPLACE FUNCTION mark_rollups_dirty(p_hours timestamptz[], p_ad_ids bigint[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rollup_ad_changes (hour, ads, ad_ids)
    SELECT hour, count(*), array_agg(ad_id) FROM unnest(p_hours, p_ad_ids) AS m (hour, ad_id)
    GROUP BY hour
$$;

DROP FUNCTION IF EXISTS refresh_ad_clicks_rollup_ads(timestamptz, bigint, integer, timestamptz);

-- Refreshes the rollups of the oldest rows of rollup_ad_changes with id <= p_upto, as many as hold up to p_limit ads
-- (at least one row), and returns how many rows it took, how many distinct (hour, ad) pairs of them it recomputed (the
-- others were past retention) and whether rows up to p_upto remain. Each ad's hour is recomputed from its minutes; its
-- day and its advertiser's hour move by the difference, so a refresh costs what changed, not what the hour holds.
-- Pairs of hours before p_oldest (minutes past their retention) are dropped without touching the rollups. The minutes
-- are read after the rows are taken, so every change of a taken row is included; only the taken rows are deleted, so
-- a change committed meanwhile stays for the next run. Holds the same advisory lock as the whole-hour refreshes, so
-- every rollup row is written by one refresh at a time.
CREATE OR REPLACE FUNCTION refresh_ad_clicks_rollup_ads(p_upto bigint, p_limit integer, p_oldest timestamptz)
RETURNS TABLE (taken integer, refreshed integer, more boolean) LANGUAGE plpgsql AS $$
DECLARE
    origin constant timestamptz := timestamptz '2000-01-01 00:00:00+00';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('refresh_ad_clicks_rollups'));

    CREATE TEMP TABLE IF NOT EXISTS rollup_ad_changes_taken (id bigint PRIMARY KEY) ON COMMIT DELETE ROWS;
    CREATE TEMP TABLE IF NOT EXISTS rollup_ad_change_refresh (
        hour       timestamptz,
        ad_id      bigint,
        day        timestamptz,
        old_clicks bigint,
        new_clicks bigint,
        PRIMARY KEY (hour, ad_id)
    ) ON COMMIT DELETE ROWS;

    -- Every row holds at least one ad, so the first p_limit rows are all that can be taken: a backlog of many small
    -- rows is not summed over again at every call.
    INSERT INTO rollup_ad_changes_taken (id)
    SELECT id FROM (
        SELECT id, sum(ads) OVER (ORDER BY id) - ads AS before
        FROM (SELECT id, ads FROM rollup_ad_changes WHERE id <= p_upto ORDER BY id LIMIT p_limit) f) c
    WHERE before < p_limit;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken = 0 THEN
        refreshed := 0;
        more := false;
        RETURN NEXT;
        RETURN;
    END IF;

    -- Each pair's stored hour and the sum of its minutes, read in (ad, hour) order: the order of both indexes.
    INSERT INTO rollup_ad_change_refresh (hour, ad_id, day, old_clicks, new_clicks)
    SELECT p.hour, p.ad_id, date_bin('1 day', p.hour, origin),
           CASE WHEN p.hour >= p_oldest THEN
               (SELECT h.clicks FROM ad_clicks_hourly h WHERE h.ad_id = p.ad_id AND h.hour = p.hour) END,
           CASE WHEN p.hour >= p_oldest THEN
               (SELECT sum(m.clicks) FROM ad_clicks_minute m
                WHERE m.ad_id = p.ad_id AND m.minute >= p.hour AND m.minute < p.hour + interval '1 hour') END
    FROM (SELECT DISTINCT a.ad_id, c.hour
          FROM rollup_ad_changes c
          JOIN rollup_ad_changes_taken t ON t.id = c.id
          CROSS JOIN LATERAL unnest(c.ad_ids) AS a (ad_id)
          ORDER BY a.ad_id, c.hour) p;

    DELETE FROM ad_clicks_hourly h USING rollup_ad_change_refresh r
    WHERE h.ad_id = r.ad_id AND h.hour = r.hour AND r.hour >= p_oldest AND r.new_clicks IS NULL AND r.old_clicks IS NOT NULL;
    INSERT INTO ad_clicks_hourly (ad_id, hour, clicks)
    SELECT ad_id, hour, new_clicks FROM rollup_ad_change_refresh
    WHERE hour >= p_oldest AND new_clicks IS NOT NULL AND new_clicks IS DISTINCT FROM old_clicks
    ORDER BY ad_id, hour
    ON CONFLICT (ad_id, hour) DO UPDATE SET clicks = EXCLUDED.clicks;

    -- A day's row is the sum of its hours: with no row yet, the ad had no hour that day, so the difference is the sum.
    INSERT INTO ad_clicks_daily AS d (ad_id, day, clicks)
    SELECT ad_id, day, sum(coalesce(new_clicks, 0) - coalesce(old_clicks, 0)) FROM rollup_ad_change_refresh
    WHERE hour >= p_oldest AND new_clicks IS DISTINCT FROM old_clicks
    GROUP BY ad_id, day
    ORDER BY ad_id, day
    ON CONFLICT (ad_id, day) DO UPDATE SET clicks = d.clicks + EXCLUDED.clicks;
    DELETE FROM ad_clicks_daily d
    USING (SELECT DISTINCT ad_id, day FROM rollup_ad_change_refresh WHERE hour >= p_oldest AND new_clicks IS NULL AND old_clicks IS NOT NULL) g
    WHERE d.ad_id = g.ad_id AND d.day = g.day
      AND NOT EXISTS (SELECT 1 FROM ad_clicks_hourly h WHERE h.ad_id = g.ad_id AND h.hour >= g.day AND h.hour < g.day + interval '1 day');

    INSERT INTO advertiser_clicks_hourly AS v (advertiser_id, hour, clicks)
    SELECT a.advertiser_id, r.hour, sum(coalesce(r.new_clicks, 0) - coalesce(r.old_clicks, 0))
    FROM rollup_ad_change_refresh r
    JOIN ads a ON a.ad_id = r.ad_id
    WHERE r.hour >= p_oldest AND r.new_clicks IS DISTINCT FROM r.old_clicks
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (advertiser_id, hour) DO UPDATE SET clicks = v.clicks + EXCLUDED.clicks;

    DELETE FROM rollup_ad_changes c USING rollup_ad_changes_taken t WHERE c.id = t.id;

    SELECT count(*) FILTER (WHERE r.hour >= p_oldest) INTO refreshed FROM rollup_ad_change_refresh r;
    more := EXISTS (SELECT 1 FROM rollup_ad_changes c WHERE c.id <= p_upto);
    RETURN NEXT;
END $$;
