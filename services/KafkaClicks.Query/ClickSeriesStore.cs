using System.Text;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Npgsql;
using NpgsqlTypes;

namespace KafkaClicks.Query;

/// <summary>One bucket of a click series: its start, its clicks, and whether its count can still change.</summary>
public sealed record ClickPoint(DateTimeOffset T, long Clicks, bool Final);

/// <summary>Clicks per bucket for a set of ads, summed over the ads or per ad.</summary>
public sealed record SeriesResult(DateTimeOffset[] Starts, long[] Totals, IReadOnlyDictionary<long, long[]> PerAd);

/// <summary>Where a run of time is read from.</summary>
public enum Source
{
    /// <summary>ad_clicks_daily: whole clean UTC days.</summary>
    Daily,

    /// <summary>ad_clicks_hourly: clean hours.</summary>
    Hourly,

    /// <summary>ad_clicks_minute: the real-time tail, dirty hours, and buckets finer than an hour.</summary>
    Minute,
}

/// <summary>A run of time [From, To) read from one source.</summary>
public sealed record Segment(Source Source, DateTimeOffset From, DateTimeOffset To);

/// <summary>One ad of a top-ads answer.</summary>
public sealed record TopAd(long AdId, long AdvertiserId, long Clicks);

/// <summary>One advertiser the caller may see.</summary>
public sealed record AdvertiserSummary(long AdvertiserId, string Name, long Ads);

/// <summary>
/// Reads click series and the completeness watermark from Postgres. Salts are summed here. Each query is answered
/// from the cheapest source that is exact: whole clean UTC days from ad_clicks_daily, clean hours from
/// ad_clicks_hourly (an advertiser's totals: clean hours and days from advertiser_clicks_hourly), and the real-time tail from ad_clicks_minute. The tail is every hour at or after the hour of
/// completeThrough (what the refresh job may not have seen yet) and every hour still marked dirty, whole or for one of
/// its ads (dirty_rollup_hours: the sink marks in the same transaction as its minutes, and a mark goes only after the
/// refresh), so an answer is never staler than the minutes.
/// </summary>
public sealed class ClickSeriesStore : IDisposable
{
    private static readonly TimeSpan Day = TimeSpan.FromDays(1);
    private static readonly TimeSpan RememberedFor = TimeSpan.FromMinutes(10);

    /// <summary>How long top-ads answers of a window length are summed without the leaders after they failed to prove one.</summary>
    private static readonly TimeSpan LeadersRetryAfter = TimeSpan.FromSeconds(30);

    private readonly NpgsqlDataSource _dataSource;
    private readonly int _statementTimeoutSeconds;
    private readonly int _topLeadersPerMinute;
    private readonly TimeProvider _time;

    // Per window length (minutes), when each minute's leaders last failed to prove a top-ads answer.
    private readonly System.Collections.Concurrent.ConcurrentDictionary<int, long> _leadersFailedAt = new();

    // An ad never changes advertiser and an advertiser is never deleted, so both are remembered (ids not found are
    // not: they may be created any time).
    private readonly MemoryCache _owners = new(new MemoryCacheOptions { SizeLimit = 250_000 });
    private readonly MemoryCache _advertisers = new(new MemoryCacheOptions { SizeLimit = 100_000 });

    public ClickSeriesStore(NpgsqlDataSource dataSource, IOptions<QueryOptions> options, TimeProvider time)
    {
        _time = time;
        _dataSource = dataSource;
        _statementTimeoutSeconds = (int)Math.Ceiling(options.Value.StatementTimeout.TotalSeconds);
        _topLeadersPerMinute = options.Value.TopLeadersPerMinute;
    }

    /// <summary>A command on <paramref name="sql"/> (or text set later) cancelled after <see cref="QueryOptions.StatementTimeout"/>.</summary>
    private NpgsqlCommand Command(string sql)
    {
        var command = _dataSource.CreateCommand(sql);
        command.CommandTimeout = _statementTimeoutSeconds;
        return command;
    }

    /// <summary>The advertiser owning the ad, or null when there is no such ad.</summary>
    public async Task<long?> AdOwnerAsync(long adId, CancellationToken cancellationToken)
    {
        if (_owners.TryGetValue(adId, out long cached))
        {
            return cached;
        }

        await using var command = Command($"SELECT advertiser_id FROM {Tables.Ads} WHERE ad_id = $1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = adId });
        if (await command.ExecuteScalarAsync(cancellationToken) is not long owner)
        {
            return null;
        }

        _owners.Set(adId, owner, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = RememberedFor });
        return owner;
    }

    /// <summary>Whether the advertiser exists. Advertisers are never deleted, so a yes is remembered (a no is not).</summary>
    public async Task<bool> AdvertiserExistsAsync(long advertiserId, CancellationToken cancellationToken)
    {
        if (_advertisers.TryGetValue(advertiserId, out _))
        {
            return true;
        }

        await using var command = Command($"SELECT EXISTS (SELECT 1 FROM {Tables.Advertisers} WHERE advertiser_id = $1)");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = advertiserId });
        if (await command.ExecuteScalarAsync(cancellationToken) is not true)
        {
            return false;
        }

        _advertisers.Set(advertiserId, true, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = RememberedFor });
        return true;
    }

    /// <summary>The advertiser's ads in id order, or null when there is no such advertiser.</summary>
    public async Task<long[]?> AdvertiserAdsAsync(long advertiserId, CancellationToken cancellationToken)
    {
        await using var command = Command($"""
            SELECT array(SELECT ad_id FROM {Tables.Ads} WHERE advertiser_id = $1 ORDER BY ad_id)
            FROM {Tables.Advertisers} WHERE advertiser_id = $1
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = advertiserId });
        return await command.ExecuteScalarAsync(cancellationToken) as long[];
    }

    /// <summary>Up to <paramref name="limit"/> of the advertiser's ads with ids above <paramref name="after"/>, in id order.</summary>
    public async Task<List<AdSummary>> AdsPageAsync(long advertiserId, long after, int limit, CancellationToken cancellationToken)
    {
        await using var command = Command($"""
            SELECT ad_id, redirect_url, deleted_at IS NOT NULL FROM {Tables.Ads}
            WHERE advertiser_id = $1 AND ad_id > $2
            ORDER BY ad_id
            LIMIT $3
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = advertiserId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        var ads = new List<AdSummary>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            ads.Add(new AdSummary(reader.GetInt64(0), reader.GetString(1), reader.GetBoolean(2)));
        }

        return ads;
    }

    /// <summary>
    /// Looks at the advertiser's next <paramref name="scan"/> ads after <paramref name="after"/> in id order (one range of
    /// the (advertiser_id, ad_id) index, so the cost is bounded whatever the advertiser's size) and returns, in id order,
    /// at most <paramref name="limit"/> of them whose id is <paramref name="adId"/> or whose URL contains
    /// <paramref name="text"/> (case-insensitive); with whether more ads follow those looked at, and the last one's id.
    /// </summary>
    public async Task<(List<AdSummary> Matches, bool More, long LastScanned)> SearchAdsPageAsync(
        long advertiserId, long after, int scan, long? adId, string text, int limit, CancellationToken cancellationToken)
    {
        await using var command = Command($"""
            WITH ahead AS MATERIALIZED (
                SELECT ad_id, redirect_url, deleted_at FROM {Tables.Ads}
                WHERE advertiser_id = $1 AND ad_id > $2
                ORDER BY ad_id
                LIMIT $3 + 1),
            scanned AS MATERIALIZED (SELECT * FROM ahead ORDER BY ad_id LIMIT $3)
            SELECT (SELECT count(*) FROM ahead) > $3, (SELECT max(ad_id) FROM scanned), m.ad_id, m.redirect_url, m.deleted
            FROM (SELECT 1) AS one
            LEFT JOIN LATERAL (
                SELECT ad_id, redirect_url, deleted_at IS NOT NULL AS deleted FROM scanned
                WHERE ad_id = $4 OR strpos(lower(redirect_url), lower($5)) > 0
                ORDER BY ad_id
                LIMIT $6) AS m ON true
            ORDER BY m.ad_id
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = advertiserId });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = scan });
        command.Parameters.Add(new NpgsqlParameter<long?> { TypedValue = adId, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = text });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        var matches = new List<AdSummary>();
        var more = false;
        var last = after;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            more = reader.GetBoolean(0);
            last = reader.IsDBNull(1) ? after : reader.GetInt64(1);
            if (!reader.IsDBNull(2))
            {
                matches.Add(new AdSummary(reader.GetInt64(2), reader.GetString(3), reader.GetBoolean(4)));
            }
        }

        return (matches, more, last);
    }

    /// <summary>The latest <paramref name="limit"/> reconciliation runs that changed or could change the database (no dry runs), newest first.</summary>
    public async Task<List<ReconciliationRun>> ReconciliationRunsAsync(int limit, CancellationToken cancellationToken)
    {
        await using var command = Command($"""
            SELECT run_id, range_from, range_to, ad_id, status, coalesce(raw_clicks, 0), coalesce(db_clicks, 0),
                   coalesce(windows_checked, 0), coalesce(windows_corrected, 0), started_at, finished_at
            FROM {Tables.ReconciliationRuns}
            WHERE NOT dry_run
            ORDER BY started_at DESC, run_id DESC
            LIMIT $1
            """);
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        var runs = new List<ReconciliationRun>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            runs.Add(new ReconciliationRun(
                reader.GetInt64(0), reader.GetFieldValue<DateTimeOffset>(1), reader.GetFieldValue<DateTimeOffset>(2),
                reader.IsDBNull(3) ? null : reader.GetInt64(3), reader.GetString(4), reader.GetInt64(5), reader.GetInt64(6),
                reader.GetInt64(7), reader.GetInt64(8), reader.GetFieldValue<DateTimeOffset>(9),
                reader.IsDBNull(10) ? null : reader.GetFieldValue<DateTimeOffset>(10)));
        }

        return runs;
    }

    /// <summary>
    /// Up to <paramref name="limit"/> advertisers with ids above <paramref name="after"/> in id order (only
    /// <paramref name="advertiserId"/>, or all when it is null), with their number of ads.
    /// </summary>
    public async Task<IReadOnlyList<AdvertiserSummary>> AdvertisersAsync(long? advertiserId, long after, int limit, CancellationToken cancellationToken)
    {
        await using var command = Command($"""
            SELECT v.advertiser_id, v.name, (SELECT count(*) FROM {Tables.Ads} a WHERE a.advertiser_id = v.advertiser_id)
            FROM {Tables.Advertisers} v
            WHERE ($1::bigint IS NULL OR v.advertiser_id = $1) AND v.advertiser_id > $3
            ORDER BY v.advertiser_id
            LIMIT $2
            """);
        command.Parameters.Add(new NpgsqlParameter<long?> { TypedValue = advertiserId, NpgsqlDbType = NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = after });
        var advertisers = new List<AdvertiserSummary>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            advertisers.Add(new AdvertiserSummary(reader.GetInt64(0), reader.GetString(1), reader.GetInt64(2)));
        }

        return advertisers;
    }

    /// <summary>
    /// Every minute before this instant has its final count in the database: the least of the per-partition
    /// final watermarks the sink records, over partitions that reported in the last 10 minutes.
    /// </summary>
    public async Task<DateTimeOffset?> CompleteThroughAsync(CancellationToken cancellationToken) =>
        await StreamProgress.CompleteThroughAsync(_dataSource, cancellationToken) is { } through ? new DateTimeOffset(through) : null;

    /// <summary>
    /// Clicks per bucket of <paramref name="range"/> for <paramref name="adIds"/>, salts summed, in total or per ad
    /// (<paramref name="perAd"/>); every bucket is present (zero when nothing was counted). <paramref name="tailStart"/>:
    /// hours at or after it are read from the minutes.
    /// </summary>
    public Task<SeriesResult> AdSeriesAsync(long[] adIds, QueryRange range, DateTimeOffset tailStart, bool perAd, CancellationToken cancellationToken) =>
        SeriesAsync(adIds, advertiserId: null, range, tailStart, perAd, cancellationToken);

    /// <summary>
    /// The advertiser's clicks per bucket of <paramref name="range"/>, all its ads and salts summed, in one round trip:
    /// clean hours and days from advertiser_clicks_hourly (one row per hour instead of one per ad and hour), the tail
    /// and dirty hours from the minutes of the ads the query itself reads from <c>ads</c>.
    /// </summary>
    public Task<SeriesResult> AdvertiserSeriesAsync(long advertiserId, QueryRange range, DateTimeOffset tailStart, CancellationToken cancellationToken) =>
        SeriesAsync(adIds: null, advertiserId, range, tailStart, perAd: false, cancellationToken);

    /// <summary>For the ads <paramref name="adIds"/>, or else every ad of <paramref name="advertiserId"/> (totals only).</summary>
    private async Task<SeriesResult> SeriesAsync(
        long[]? adIds, long? advertiserId, QueryRange range, DateTimeOffset tailStart, bool perAd, CancellationToken cancellationToken)
    {
        var starts = range.BucketStarts();
        var totals = new long[starts.Length];
        var byAd = new Dictionary<long, long[]>();
        if (perAd)
        {
            foreach (var adId in adIds!)
            {
                byAd[adId] = new long[starts.Length];
            }
        }

        if (adIds is { Length: 0 } || starts.Length == 0)
        {
            return new SeriesResult(starts, totals, byAd);
        }

        var unit = RowUnit(range, starts);
        var dirty = unit >= TimeBuckets.Hour ? await DirtyHoursAsync(range.From, range.To, cancellationToken) : [];
        var segments = Plan(range, unit, tailStart, dirty);

        // $1 the ads or the advertiser, $2 the row unit, $3 its origin; then the bounds of each segment.
        var sql = new StringBuilder(perAd ? "SELECT ad_id, t, sum(clicks)::bigint FROM (" : "SELECT 0::bigint, t, sum(clicks)::bigint FROM (");
        await using var command = Command(string.Empty);
        command.Parameters.Add(adIds is not null
            ? new NpgsqlParameter<long[]> { TypedValue = adIds }
            : new NpgsqlParameter<long> { TypedValue = advertiserId!.Value });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = unit });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = QueryRange.Origin, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var ads = adIds is not null ? "ad_id = ANY($1)" : $"ad_id = ANY(array(SELECT ad_id FROM {Tables.Ads} WHERE advertiser_id = $1))";
        for (var i = 0; i < segments.Count; i++)
        {
            var (source, from, to) = (segments[i].Source, segments[i].From, segments[i].To);
            var f = command.Parameters.Count + 1;
            sql.Append(i == 0 ? "\n  " : "\n  UNION ALL ").Append(source switch
            {
                // Hours of a day bucket are summed into it by the reader, like any rows finer than the bucket.
                Source.Daily or Source.Hourly when adIds is null =>
                    $"SELECT 0::bigint, hour AS t, clicks FROM {Tables.AdvertiserClicksHourly} WHERE advertiser_id = $1 AND hour >= ${f} AND hour < ${f + 1}",
                Source.Daily => $"SELECT ad_id, day AS t, clicks FROM {Tables.AdClicksDaily} WHERE {ads} AND day >= ${f} AND day < ${f + 1}",
                Source.Hourly => $"SELECT ad_id, hour AS t, clicks FROM {Tables.AdClicksHourly} WHERE {ads} AND hour >= ${f} AND hour < ${f + 1}",
                _ => $"SELECT ad_id, date_bin($2, minute, $3) AS t, clicks FROM {Tables.AdClicksMinute} WHERE {ads} AND minute >= ${f} AND minute < ${f + 1}",
            });
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        }

        sql.Append("\n) s GROUP BY 1, 2");
        command.CommandText = sql.ToString();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var index = Array.BinarySearch(starts, reader.GetFieldValue<DateTimeOffset>(1));
            index = index >= 0 ? index : ~index - 1;
            var clicks = reader.GetInt64(2);
            totals[index] += clicks;
            if (perAd)
            {
                byAd[reader.GetInt64(0)][index] += clicks;
            }
        }

        return new SeriesResult(starts, totals, byAd);
    }

    /// <summary>
    /// The most clicked ads over minutes [from, to), salts summed, optionally of one advertiser; ties by ad id. Across
    /// all advertisers the answer comes from each minute's leaders when they prove it (<see cref="LeadersTopAsync"/>),
    /// and else, like an advertiser's, from every minute row of the window. (Reading more leaders when the first do not
    /// prove it cost more than the whole window wherever it was tried: traffic that few leaders cannot settle is spread
    /// so evenly that many cannot either.) After the leaders fail for a window length, its answers are summed for
    /// <see cref="LeadersRetryAfter"/> before the leaders are tried again: evenly spread traffic then costs what it did
    /// before there were leaders.
    /// </summary>
    public async Task<IReadOnlyList<TopAd>> TopAsync(DateTimeOffset from, DateTimeOffset to, int limit, long? advertiserId, CancellationToken cancellationToken)
    {
        if (advertiserId is null)
        {
            // Traffic changes shape slowly: after the leaders failed to prove a window of this length, its answers are
            // summed for a while without trying them first (either way the answer is the exact one).
            var minutes = (int)((to - from).Ticks / TimeSpan.TicksPerMinute);
            var now = _time.GetTimestamp();
            if (!_leadersFailedAt.TryGetValue(minutes, out var failedAt) || _time.GetElapsedTime(failedAt, now) >= LeadersRetryAfter)
            {
                if (await LeadersTopAsync(from, to, limit, Math.Max(_topLeadersPerMinute, limit), cancellationToken) is { } top)
                {
                    QueryMetrics.TopAnswered("leaders");
                    return top;
                }

                _leadersFailedAt[minutes] = now;
            }

            QueryMetrics.TopAnswered("scan");
        }

        return await ScanTopAsync(from, to, limit, advertiserId, cancellationToken);
    }

    /// <summary>
    /// The top <paramref name="limit"/> ads over minutes [from, to) from each minute's <paramref name="leaders"/> largest
    /// rows (the (minute, clicks) index), or null when those cannot prove the answer. The candidates are the ads among
    /// the leaders and every ad with a salted row in the window (hot ads, few), each with its window summed exactly. Any
    /// other ad has one row a minute at most, none in a minute with fewer rows than leaders (all of them lead), and in
    /// the others at most the minute's last leader's count: summed over the minutes, a bound on its clicks. The answer
    /// is proven when its last ad has more clicks than the bound, or when the bound is 0 (every row of the window leads).
    /// When the leaders show that no answer can beat the bound (the <paramref name="limit"/> largest rows of each minute,
    /// summed and shared among <paramref name="limit"/> ads, do not exceed it: evenly spread traffic) the candidates are
    /// not summed at all.
    /// </summary>
    private async Task<IReadOnlyList<TopAd>?> LeadersTopAsync(DateTimeOffset from, DateTimeOffset to, int limit, int leaders, CancellationToken cancellationToken)
    {
        await using var command = Command($"""
            WITH leaders AS MATERIALIZED (
                SELECT m.minute, l.ad_id, l.clicks
                FROM generate_series($1::timestamptz, $2::timestamptz - interval '1 minute', interval '1 minute') AS m (minute)
                CROSS JOIN LATERAL (
                    SELECT ad_id, clicks FROM {Tables.AdClicksMinute}
                    WHERE minute = m.minute
                    ORDER BY clicks DESC
                    LIMIT $4) AS l
            ),
            bound AS (
                SELECT coalesce(sum(last), 0)::bigint AS clicks
                FROM (SELECT min(clicks) AS last FROM leaders GROUP BY minute HAVING count(*) = $4) AS f
            ),
            reach AS (
                SELECT coalesce(sum(clicks), 0) / $3 AS clicks
                FROM (SELECT clicks, row_number() OVER (PARTITION BY minute ORDER BY clicks DESC) AS rank FROM leaders) AS r
                WHERE rank <= $3
            ),
            candidates AS (
                SELECT ad_id FROM leaders
                UNION
                SELECT ad_id FROM {Tables.AdClicksMinute} WHERE minute >= $1 AND minute < $2 AND salt > 0
            ),
            sums AS (
                SELECT c.ad_id,
                       (SELECT sum(x.clicks::int4) FROM {Tables.AdClicksMinute} x
                        WHERE x.ad_id = c.ad_id AND x.minute >= $1 AND x.minute < $2) AS clicks
                FROM candidates c
                WHERE (SELECT clicks FROM bound) = 0 OR (SELECT clicks FROM reach) > (SELECT clicks FROM bound)
                ORDER BY 2 DESC, 1
                LIMIT $3
            )
            SELECT b.clicks, s.ad_id, a.advertiser_id, s.clicks
            FROM bound b
            LEFT JOIN (sums s JOIN {Tables.Ads} a ON a.ad_id = s.ad_id) ON true
            ORDER BY s.clicks DESC, s.ad_id
            """);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = leaders });
        var top = new List<TopAd>();
        var bound = 0L;
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            bound = reader.GetInt64(0);
            if (!reader.IsDBNull(1))
            {
                top.Add(new TopAd(reader.GetInt64(1), reader.GetInt64(2), reader.GetInt64(3)));
            }
        }

        return bound == 0 || (top.Count == limit && top[^1].Clicks > bound) ? top : null;
    }

    /// <summary>
    /// The top ads from every minute row of the window. Scoped: the advertiser's ads by primary key. Global: the
    /// (minute, clicks) index over the window. The sum is over int4: PostgreSQL sums bigint in numeric, int4 in bigint,
    /// which halves the aggregate's cost; one minute of one ad and salt is far below 2^31 clicks (60 million even at a
    /// million clicks per second).
    /// </summary>
    private async Task<IReadOnlyList<TopAd>> ScanTopAsync(DateTimeOffset from, DateTimeOffset to, int limit, long? advertiserId, CancellationToken cancellationToken)
    {
        await using var command = Command($"""
            SELECT t.ad_id, a.advertiser_id, t.clicks
            FROM (
                SELECT ad_id, sum(clicks::int4) AS clicks
                FROM {Tables.AdClicksMinute}
                WHERE minute >= $1 AND minute < $2
                  {(advertiserId is null ? "" : $"AND ad_id = ANY(array(SELECT ad_id FROM {Tables.Ads} WHERE advertiser_id = $4))")}
                GROUP BY ad_id
                ORDER BY clicks DESC, ad_id
                LIMIT $3
            ) t
            JOIN {Tables.Ads} a ON a.ad_id = t.ad_id
            ORDER BY t.clicks DESC, t.ad_id
            """);
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = limit });
        if (advertiserId is { } id)
        {
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = id });
        }

        var top = new List<TopAd>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            top.Add(new TopAd(reader.GetInt64(0), reader.GetInt64(1), reader.GetInt64(2)));
        }

        return top;
    }

    /// <summary>
    /// Splits the range into runs by source: every hour is read from the minutes when it is in the tail (at or after
    /// <paramref name="tailStart"/>) or dirty, else from the hourly rollup; a whole clean UTC day of UTC day buckets
    /// from the daily rollup. Buckets finer than an hour, or not made of whole hours (a time zone with a
    /// half-hour offset), are read from the minutes alone.
    /// </summary>
    public static IReadOnlyList<Segment> Plan(QueryRange range, TimeSpan unit, DateTimeOffset tailStart, IReadOnlySet<DateTimeOffset> dirtyHours)
    {
        if (unit < TimeBuckets.Hour)
        {
            return [new Segment(Source.Minute, range.From, range.To)];
        }

        var hours = new List<(DateTimeOffset Hour, Source Source)>();
        var daily = range.Bucket == Day && range.TimeZone is null;
        for (var day = range.From; day < range.To; day += Day)
        {
            var dayEnd = day + Day < range.To ? day + Day : range.To;
            var clean = daily && dayEnd - day == Day && dayEnd <= tailStart;
            for (var hour = day; hour < dayEnd; hour += TimeBuckets.Hour)
            {
                var source = hour >= tailStart || dirtyHours.Contains(hour) ? Source.Minute : Source.Hourly;
                clean &= source == Source.Hourly;
                hours.Add((hour, source));
            }

            if (clean)
            {
                hours.RemoveRange(hours.Count - 24, 24);
                hours.Add((day, Source.Daily));
            }
        }

        var segments = new List<Segment>();
        foreach (var (start, source) in hours)
        {
            var end = start + (source == Source.Daily ? Day : TimeBuckets.Hour);
            if (segments.Count > 0 && segments[^1].Source == source && segments[^1].To == start)
            {
                segments[^1] = segments[^1] with { To = end };
            }
            else
            {
                segments.Add(new Segment(source, start, end));
            }
        }

        return segments;
    }

    /// <summary>
    /// The size of the rows the database returns before they are summed into buckets: the bucket itself below an
    /// hour; an hour when every bucket starts on a whole UTC hour; else the largest of 15 and 1 minutes that fits.
    /// </summary>
    public static TimeSpan RowUnit(QueryRange range, DateTimeOffset[] starts)
    {
        if (range.Bucket < TimeBuckets.Hour)
        {
            return range.Bucket;
        }

        foreach (var unit in new[] { TimeBuckets.Hour, TimeSpan.FromMinutes(15) })
        {
            if (starts.All(s => (s - QueryRange.Origin).Ticks % unit.Ticks == 0) && (range.To - QueryRange.Origin).Ticks % unit.Ticks == 0)
            {
                return unit;
            }
        }

        return TimeSpan.FromMinutes(1);
    }

    private async Task<HashSet<DateTimeOffset>> DirtyHoursAsync(DateTimeOffset from, DateTimeOffset to, CancellationToken cancellationToken)
    {
        await using var command = Command("SELECT hour FROM dirty_rollup_hours($1, $2) AS hour");
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var hours = new HashSet<DateTimeOffset>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            hours.Add(reader.GetFieldValue<DateTimeOffset>(0));
        }

        return hours;
    }

    public void Dispose()
    {
        _owners.Dispose();
        _advertisers.Dispose();
    }
}
