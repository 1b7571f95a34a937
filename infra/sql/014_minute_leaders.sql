-- GET /v1/top without summing every minute row of its window (issue #22). At 10,000,000 ads a peak minute holds
-- ~220,000 rows, so a 60-minute window is ~13 million rows to sum per request. Instead the query reads each minute's
-- largest counts (its leaders) from this index, sums the window of only the ads among them, and proves that no other ad
-- can rank higher: an unsalted ad that leads no minute has at most each minute's last leader's count in it
-- (ClickSeriesStore.TopAsync). Leading on minute, it also serves every range scan by minute the old
-- (minute) index served (the rollup refresh, retention, the reconciler), so it replaces that index on both flavors
-- (TimescaleDB names the hypertable's own time index the same).
--
-- Its cost: the sink rewrites a row's clicks with every partial count, and a change to an indexed column makes the
-- update non-HOT (a new index entry in every index). benchmarks/HISTORY.md (sink, query and scale) has the figures.
CREATE INDEX IF NOT EXISTS ad_clicks_minute_minute_clicks ON ad_clicks_minute (minute, clicks DESC);
DROP INDEX IF EXISTS ad_clicks_minute_minute_idx;

-- Salted rows (hot ads only: nearly every row has salt 0): an ad with several salt rows in a minute can top the window
-- without any of them leading, so every salted ad of the window is summed too, found here without reading the rest.
CREATE INDEX IF NOT EXISTS ad_clicks_minute_salted ON ad_clicks_minute (minute, ad_id) WHERE salt > 0;
