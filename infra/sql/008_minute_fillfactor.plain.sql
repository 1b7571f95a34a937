-- Room for the sink's updates on every page of ad_clicks_minute. A minute row is written once and then rewritten
-- by each partial emission and by its final (about seven times in its first two minutes). With pages filled to
-- 60% the new version fits on the row's own page, so the update is HOT: neither index gets a new entry and
-- page pruning reclaims the old version without a vacuum. Measured on the sink benchmark's update pass:
-- 0% HOT at fillfactor 100, 67% at 60, all of them at 50 (benchmarks/RESULTS.md).
--
-- Partitions are created with it from now on (the function is 002's with the storage parameter added), and the
-- existing ones use it for the pages they write from now on.
CREATE OR REPLACE FUNCTION ensure_ad_clicks_minute_partitions(p_from timestamptz, p_to timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    d       date := (p_from AT TIME ZONE 'UTC')::date;
    created integer := 0;
    name    text;
BEGIN
    WHILE d < (p_to AT TIME ZONE 'UTC')::date + CASE WHEN (p_to AT TIME ZONE 'UTC')::time = '00:00' THEN 0 ELSE 1 END LOOP
        name := format('ad_clicks_minute_p%s', to_char(d, 'YYYYMMDD'));
        IF to_regclass(name) IS NULL THEN
            EXECUTE format(
                'CREATE TABLE IF NOT EXISTS %I PARTITION OF ad_clicks_minute FOR VALUES FROM (%L) TO (%L) WITH (fillfactor = 60)',
                name, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END $$;

DO $$
DECLARE
    part record;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'ad_clicks_minute'::regclass
    LOOP
        EXECUTE format('ALTER TABLE %I SET (fillfactor = 60)', part.relname);
    END LOOP;
END $$;
