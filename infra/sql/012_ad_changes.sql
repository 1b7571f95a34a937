-- Ingest instances keep a local copy of the ads (the ad directory) so that clicks of known ads are redirected and
-- counted while PostgreSQL is unreachable. They follow the table by transaction id: every insert or update stamps the
-- row with its transaction's id, every delete leaves a tombstone, and a copy that has seen every transaction before
-- its last snapshot's xmin re-reads only rows stamped at or after it (transactions still open then included).
ALTER TABLE ads ADD COLUMN IF NOT EXISTS change_xid xid8 NOT NULL DEFAULT '0';
CREATE INDEX IF NOT EXISTS ads_change_xid ON ads (change_xid);

CREATE TABLE IF NOT EXISTS ad_tombstones (
    ad_id      bigint NOT NULL,
    change_xid xid8   NOT NULL,
    deleted_at timestamptz NOT NULL DEFAULT now()
);
CREATE INDEX IF NOT EXISTS ad_tombstones_change_xid ON ad_tombstones (change_xid);

CREATE OR REPLACE FUNCTION ads_stamp_change() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    NEW.change_xid := pg_current_xact_id();
    RETURN NEW;
END $$;

CREATE OR REPLACE FUNCTION ads_record_tombstone() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    INSERT INTO ad_tombstones (ad_id, change_xid) VALUES (OLD.ad_id, pg_current_xact_id());
    RETURN OLD;
END $$;

DROP TRIGGER IF EXISTS ads_stamp_change ON ads;
CREATE TRIGGER ads_stamp_change BEFORE INSERT OR UPDATE ON ads FOR EACH ROW EXECUTE FUNCTION ads_stamp_change();
DROP TRIGGER IF EXISTS ads_record_tombstone ON ads;
CREATE TRIGGER ads_record_tombstone AFTER DELETE ON ads FOR EACH ROW EXECUTE FUNCTION ads_record_tombstone();

-- Which database this is, so that a copy made from a database that was since dropped and created again under the same
-- name is recognised as stale and made again.
CREATE TABLE IF NOT EXISTS database_identity (
    singleton boolean PRIMARY KEY DEFAULT true CHECK (singleton),
    id        uuid    NOT NULL DEFAULT gen_random_uuid()
);
INSERT INTO database_identity DEFAULT VALUES ON CONFLICT DO NOTHING;
