-- Per-minute click counts on plain PostgreSQL: a table range-partitioned by day.
-- Rows hold absolute counts per (ad, minute, salt); the sink upserts them and never increments.
CREATE TABLE IF NOT EXISTS ad_clicks_minute (
    ad_id      bigint      NOT NULL,
    minute     timestamptz NOT NULL,
    salt       smallint    NOT NULL DEFAULT 0,
    clicks     bigint      NOT NULL CHECK (clicks >= 0),
    final      boolean     NOT NULL DEFAULT false,
    -- When the aggregator emitted this count: an older emission never overwrites a newer one.
    emitted_at timestamptz NOT NULL,
    updated_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (ad_id, minute, salt)
) PARTITION BY RANGE (minute);

-- Creates the daily partitions that cover [p_from, p_to); returns how many were created.
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
                'CREATE TABLE IF NOT EXISTS %I PARTITION OF ad_clicks_minute FOR VALUES FROM (%L) TO (%L)',
                name, (d::timestamp AT TIME ZONE 'UTC'), ((d + 1)::timestamp AT TIME ZONE 'UTC'));
            created := created + 1;
        END IF;
        d := d + 1;
    END LOOP;
    RETURN created;
END $$;

-- Drops the daily partitions that end at or before p_before; returns how many were dropped.
CREATE OR REPLACE FUNCTION drop_ad_clicks_minute_partitions(p_before timestamptz)
RETURNS integer LANGUAGE plpgsql AS $$
DECLARE
    part    record;
    dropped integer := 0;
BEGIN
    FOR part IN
        SELECT c.relname
        FROM pg_inherits i
        JOIN pg_class c ON c.oid = i.inhrelid
        WHERE i.inhparent = 'ad_clicks_minute'::regclass
          AND c.relname ~ '^ad_clicks_minute_p[0-9]{8}$'
          AND (to_date(substring(c.relname from '[0-9]{8}$'), 'YYYYMMDD') + 1)::timestamp AT TIME ZONE 'UTC' <= p_before
    LOOP
        EXECUTE format('DROP TABLE %I', part.relname);
        dropped := dropped + 1;
    END LOOP;
    RETURN dropped;
END $$;

SELECT ensure_ad_clicks_minute_partitions(now() - interval '2 days', now() + interval '7 days');
