-- Incremental rollups on plain PostgreSQL (see 015_rollup_dirty_ads.sql).

-- Marks the rollups dirty for a change of minutes: entry i is ad p_ad_ids[i] in the UTC hour p_hours[i]. Run it in the
-- transaction that changes the minutes, so a mark exists exactly when its change does, even if the writer dies right
-- after its commit. Marks are written in (hour, ad) order, so concurrent writers lock them in the same order.
CREATE OR REPLACE FUNCTION mark_rollups_dirty(p_hours timestamptz[], p_ad_ids bigint[])
RETURNS void LANGUAGE sql AS $$
    INSERT INTO rollup_dirty_ads AS d (hour, ad_id)
    SELECT DISTINCT hour, ad_id FROM unnest(p_hours, p_ad_ids) AS m (hour, ad_id) ORDER BY hour, ad_id
    ON CONFLICT (hour, ad_id) DO UPDATE SET version = EXCLUDED.version
$$;

-- Refreshes the rollups of up to p_limit marks of rollup_dirty_ads after (p_after_hour, p_after_ad) in (hour, ad) order,
-- and returns how many it took, how many of them it recomputed (the others were past retention) and the last one
-- (the caller's next p_after). Each marked ad's hour is recomputed from
-- its minutes; its day and its advertiser's hour move by the difference, so a refresh costs what changed, not what the
-- hour holds. Marks of hours before p_oldest (minutes past their retention) are dropped without touching the rollups.
-- A mark is removed only if nobody renewed it meanwhile: the minutes are read after the marks, so a change committed
-- in between is included, and one committed later has renewed its mark, which stays for the next run. Holds the same
-- advisory lock as the whole-hour refreshes, so every rollup row is written by one refresh at a time.
CREATE OR REPLACE FUNCTION refresh_ad_clicks_rollup_ads(p_after_hour timestamptz, p_after_ad bigint, p_limit integer, p_oldest timestamptz)
RETURNS TABLE (taken integer, refreshed integer, last_hour timestamptz, last_ad bigint) LANGUAGE plpgsql AS $$
DECLARE
    origin constant timestamptz := timestamptz '2000-01-01 00:00:00+00';
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('refresh_ad_clicks_rollups'));

    CREATE TEMP TABLE IF NOT EXISTS rollup_ad_refresh (
        hour       timestamptz,
        ad_id      bigint,
        version    bigint,
        day        timestamptz,
        old_clicks bigint,
        new_clicks bigint,
        PRIMARY KEY (hour, ad_id)
    ) ON COMMIT DELETE ROWS;

    INSERT INTO rollup_ad_refresh (hour, ad_id, version, day)
    SELECT d.hour, d.ad_id, d.version, date_bin('1 day', d.hour, origin)
    FROM rollup_dirty_ads d
    WHERE (d.hour, d.ad_id) > (p_after_hour, p_after_ad)
    ORDER BY d.hour, d.ad_id
    LIMIT p_limit;
    GET DIAGNOSTICS taken = ROW_COUNT;
    IF taken = 0 THEN
        refreshed := 0;
        last_hour := p_after_hour;
        last_ad := p_after_ad;
        RETURN NEXT;
        RETURN;
    END IF;

    UPDATE rollup_ad_refresh r
    SET old_clicks = (SELECT h.clicks FROM ad_clicks_hourly h WHERE h.ad_id = r.ad_id AND h.hour = r.hour),
        new_clicks = (SELECT sum(m.clicks) FROM ad_clicks_minute m
                      WHERE m.ad_id = r.ad_id AND m.minute >= r.hour AND m.minute < r.hour + interval '1 hour')
    WHERE r.hour >= p_oldest;

    DELETE FROM ad_clicks_hourly h USING rollup_ad_refresh r
    WHERE h.ad_id = r.ad_id AND h.hour = r.hour AND r.hour >= p_oldest AND r.new_clicks IS NULL AND r.old_clicks IS NOT NULL;
    INSERT INTO ad_clicks_hourly (ad_id, hour, clicks)
    SELECT ad_id, hour, new_clicks FROM rollup_ad_refresh
    WHERE hour >= p_oldest AND new_clicks IS NOT NULL AND new_clicks IS DISTINCT FROM old_clicks
    ORDER BY ad_id, hour
    ON CONFLICT (ad_id, hour) DO UPDATE SET clicks = EXCLUDED.clicks;

    -- A day's row is the sum of its hours: with no row yet, the ad had no hour that day, so the difference is the sum.
    INSERT INTO ad_clicks_daily AS d (ad_id, day, clicks)
    SELECT ad_id, day, sum(coalesce(new_clicks, 0) - coalesce(old_clicks, 0)) FROM rollup_ad_refresh
    WHERE hour >= p_oldest AND new_clicks IS DISTINCT FROM old_clicks
    GROUP BY ad_id, day
    ORDER BY ad_id, day
    ON CONFLICT (ad_id, day) DO UPDATE SET clicks = d.clicks + EXCLUDED.clicks;
    DELETE FROM ad_clicks_daily d
    USING (SELECT DISTINCT ad_id, day FROM rollup_ad_refresh WHERE hour >= p_oldest AND new_clicks IS NULL AND old_clicks IS NOT NULL) g
    WHERE d.ad_id = g.ad_id AND d.day = g.day
      AND NOT EXISTS (SELECT 1 FROM ad_clicks_hourly h WHERE h.ad_id = g.ad_id AND h.hour >= g.day AND h.hour < g.day + interval '1 day');

    INSERT INTO advertiser_clicks_hourly AS v (advertiser_id, hour, clicks)
    SELECT a.advertiser_id, r.hour, sum(coalesce(r.new_clicks, 0) - coalesce(r.old_clicks, 0))
    FROM rollup_ad_refresh r
    JOIN ads a ON a.ad_id = r.ad_id
    WHERE r.hour >= p_oldest AND r.new_clicks IS DISTINCT FROM r.old_clicks
    GROUP BY 1, 2
    ORDER BY 1, 2
    ON CONFLICT (advertiser_id, hour) DO UPDATE SET clicks = v.clicks + EXCLUDED.clicks;

    -- Locked in (hour, ad) order first, the order writers mark in: a writer renewing some of these marks while this
    -- deletes others can then wait for it, but never the two for each other (a deadlock).
    PERFORM 1 FROM rollup_dirty_ads d JOIN rollup_ad_refresh r ON r.hour = d.hour AND r.ad_id = d.ad_id
    ORDER BY d.hour, d.ad_id
    FOR UPDATE OF d;
    DELETE FROM rollup_dirty_ads d USING rollup_ad_refresh r
    WHERE d.hour = r.hour AND d.ad_id = r.ad_id AND d.version = r.version;

    SELECT count(*) FILTER (WHERE r.hour >= p_oldest) INTO refreshed FROM rollup_ad_refresh r;
    SELECT r.hour, r.ad_id INTO last_hour, last_ad FROM rollup_ad_refresh r ORDER BY r.hour DESC, r.ad_id DESC LIMIT 1;
    RETURN NEXT;
END $$;
