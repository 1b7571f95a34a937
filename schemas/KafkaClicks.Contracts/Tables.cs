namespace KafkaClicks.Contracts;

/// <summary>
/// The PostgreSQL / TimescaleDB tables the roles read and write, as the migrations in infra/sql create them
/// (docs/ARCHITECTURE.md, "Tables"). Code names a table through these, so a search finds every reader and writer.
/// </summary>
public static class Tables
{
    /// <summary>Advertisers and the hash of each one's API key.</summary>
    public const string Advertisers = "advertisers";

    /// <summary>Ads: advertiser and registered redirect URL; soft-deleted with <c>deleted_at</c>, stamped with <c>change_xid</c>.</summary>
    public const string Ads = "ads";

    /// <summary>Ads deleted outright, by transaction id, so the ingest's local ad directory forgets them.</summary>
    public const string AdTombstones = "ad_tombstones";

    /// <summary>This database's identity: a copy of another database's ads is never followed as this one's.</summary>
    public const string DatabaseIdentity = "database_identity";

    /// <summary>Minute counts per (ad, minute, salt) as the sink stores them (a hypertable on TimescaleDB).</summary>
    public const string AdClicksMinute = "ad_clicks_minute";

    /// <summary>Hourly rollup per ad (a continuous aggregate on TimescaleDB).</summary>
    public const string AdClicksHourly = "ad_clicks_hourly";

    /// <summary>Daily (UTC) rollup per ad (a continuous aggregate on TimescaleDB).</summary>
    public const string AdClicksDaily = "ad_clicks_daily";

    /// <summary>Hourly rollup per advertiser (a continuous aggregate on TimescaleDB).</summary>
    public const string AdvertiserClicksHourly = "advertiser_clicks_hourly";

    /// <summary>Hours whose minute counts changed since their rollups were last computed (plain PostgreSQL).</summary>
    public const string RollupDirty = "rollup_dirty";

    /// <summary>The final watermark per clicks.minute partition, behind the query API's <c>completeThrough</c>.</summary>
    public const string StreamProgress = "stream_progress";

    /// <summary>One row per reconciliation run: range, schedule, counts, status.</summary>
    public const string ReconciliationRuns = "reconciliation_runs";

    /// <summary>Since when the reconcilers keep the hourly and daily schedule on this database (the first to ask sets it).</summary>
    public const string ReconciliationSchedule = "reconciliation_schedule";
}
