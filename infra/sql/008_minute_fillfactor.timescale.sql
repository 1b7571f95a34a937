-- Room for the sink's updates on every page of ad_clicks_minute (see 008_minute_fillfactor.plain.sql): with pages
-- filled to 60% a rewritten minute row stays on its page, so the update is HOT and neither index grows. Chunks
-- inherit the hypertable's storage parameters when they are created; the existing uncompressed ones get it for the
-- pages they write from now on.
ALTER TABLE ad_clicks_minute SET (fillfactor = 60);

DO $$
DECLARE
    chunk regclass;
BEGIN
    FOR chunk IN
        SELECT format('%I.%I', chunk_schema, chunk_name)::regclass
        FROM timescaledb_information.chunks
        WHERE hypertable_name = 'ad_clicks_minute' AND NOT is_compressed
    LOOP
        EXECUTE format('ALTER TABLE %s SET (fillfactor = 60)', chunk);
    END LOOP;
END $$;
