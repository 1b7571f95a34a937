using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization.Metadata;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Query;

/// <summary>
/// The query endpoints' logic for an authenticated caller and a valid range: validate the other parameters, check the
/// caller's scope, then answer from the cache (final ranges only) or the database, within the database slots.
/// </summary>
public sealed class ClickQueries : IDisposable
{
    private const int MaxTopLimit = 100;
    private const int MaxTopWindowMinutes = 60;
    private const int MaxAdvertisersPage = 1000;
    private const int MaxAdsPage = 1000;
    private const int MaxRuns = 500;
    private const int MaxSearchLength = 256;
    private static readonly TimeSpan CompleteThroughTtl = TimeSpan.FromSeconds(1);
    private readonly ClickSeriesStore _store;
    private readonly ResponseCache _cache;
    private readonly QueryOptions _options;
    private readonly TimeProvider _time;
    private readonly ConcurrencyLimiter _databaseSlots;
    private readonly PartitionedRateLimiter<long> _advertiserSlots;
    private volatile Watermark? _completeThrough;

    public ClickQueries(ClickSeriesStore store, ResponseCache cache, IOptions<QueryOptions> options, TimeProvider time)
    {
        _store = store;
        _cache = cache;
        _options = options.Value;
        _time = time;
        _databaseSlots = new ConcurrencyLimiter(new ConcurrencyLimiterOptions
        {
            PermitLimit = _options.EffectiveMaxConcurrentQueries,
            QueueLimit = _options.QueueLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        });
        var perAdvertiser = new ConcurrencyLimiterOptions
        {
            PermitLimit = _options.EffectiveMaxConcurrentQueriesPerAdvertiser,
            QueueLimit = _options.QueueLimit,
            QueueProcessingOrder = QueueProcessingOrder.OldestFirst,
        };
        _advertiserSlots = PartitionedRateLimiter.Create<long, long>(advertiser => RateLimitPartition.GetConcurrencyLimiter(advertiser, _ => perAdvertiser));
    }

    /// <summary>GET /v1/ads/{adId}/clicks.</summary>
    public async Task<Results<JsonAnswer<AdClicksResponse>, NotFoundProblem, OverloadedProblem>> AdClicksAsync(
        Caller caller, long adId, QueryRange range, CancellationToken ct)
    {
        var owner = await _store.AdOwnerAsync(adId, ct);
        if (owner is null || !caller.MaySee(owner.Value))
        {
            // 404, not 403: another advertiser's ad ids cannot be probed.
            return NotFoundProblem.UnknownAd();
        }

        var completeThrough = await CompleteThroughAsync(ct);
        var final = range.To <= completeThrough;
        var key = _cache.Key(caller, $"ad/{adId}?{Canonical(range)}");
        var (answer, overloaded) = await CachedAsync(key, final, owner.Value, QueryJsonContext.Default.AdClicksResponse, async () =>
        {
            var series = await _store.AdSeriesAsync([adId], range, TailStart(completeThrough), perAd: false, ct);
            return new AdClicksResponse(adId, range.GranularityName, range.TimeZoneName, range.From, range.To, completeThrough, final,
                series.Totals.Sum(), Points(range, series.Starts, series.Totals, completeThrough));
        }, ct);
        return answer is not null ? answer : overloaded!;
    }

    /// <summary>GET /v1/advertisers/{id}/clicks.</summary>
    public async Task<Results<JsonAnswer<AdvertiserClicksResponse>, BadRequestProblem, NotFoundProblem, OverloadedProblem>> AdvertiserClicksAsync(
        Caller caller, long advertiserId, QueryRange range, string? breakdown, CancellationToken ct)
    {
        if (breakdown is not null and not "ad")
        {
            return new BadRequestProblem("invalid-breakdown", "breakdown must be 'ad' (a series per ad) or absent (the advertiser's total).");
        }

        // Totals need only the advertiser to exist (the series query reads its ads); a breakdown needs its ads here.
        var perAd = breakdown == "ad";
        var ads = !caller.MaySee(advertiserId) ? null
            : perAd ? await _store.AdvertiserAdsAsync(advertiserId, ct)
            : await _store.AdvertiserExistsAsync(advertiserId, ct) ? [] : null;
        if (ads is null)
        {
            return NotFoundProblem.UnknownAdvertiser();
        }

        if (perAd && (long)ads.Length * range.BucketCount > _options.MaxBreakdownPoints)
        {
            return new BadRequestProblem("range-too-large",
                $"A breakdown of {ads.Length} ads holds more than {_options.MaxBreakdownPoints} points at granularity {range.GranularityName}; use a coarser granularity or a shorter range.");
        }

        var completeThrough = await CompleteThroughAsync(ct);
        var final = range.To <= completeThrough;
        var key = _cache.Key(caller, $"advertiser/{advertiserId}?{Canonical(range)}&breakdown={breakdown}");
        var (answer, overloaded) = await CachedAsync(key, final, advertiserId, QueryJsonContext.Default.AdvertiserClicksResponse, async () =>
        {
            var series = perAd
                ? await _store.AdSeriesAsync(ads, range, TailStart(completeThrough), perAd: true, ct)
                : await _store.AdvertiserSeriesAsync(advertiserId, range, TailStart(completeThrough), ct);
            var breakdownSeries = perAd
                ? series.PerAd
                    .Select(a => new AdSeries(a.Key, a.Value.Sum(), Points(range, series.Starts, a.Value, completeThrough)))
                    .OrderByDescending(a => a.Total).ThenBy(a => a.AdId).ToList()
                : null;
            return new AdvertiserClicksResponse(advertiserId, range.GranularityName, range.TimeZoneName, range.From, range.To, completeThrough, final,
                series.Totals.Sum(), Points(range, series.Starts, series.Totals, completeThrough), breakdownSeries);
        }, ct);
        return answer is not null ? answer : overloaded!;
    }

    /// <summary>GET /v1/top.</summary>
    public async Task<Results<JsonAnswer<TopAdsResponse>, BadRequestProblem, NotFoundProblem, OverloadedProblem>> TopAsync(
        Caller caller, string? window, string? limit, string? advertiserId, CancellationToken ct)
    {
        var windowName = window ?? "5m";
        if (!TryParseWindow(windowName, out var minutes))
        {
            return new BadRequestProblem("invalid-window", $"window must be a number of minutes or hours between 1m and {MaxTopWindowMinutes}m (e.g. 5m, 1h).");
        }

        if (CountParameter("limit", limit, 10, MaxTopLimit, out var count) is { } invalidLimit)
        {
            return invalidLimit;
        }

        long? scope = caller.AdvertiserId;
        if (advertiserId is not null)
        {
            if (!IdRouteConstraint.TryParse(advertiserId, out var id))
            {
                return new BadRequestProblem("invalid-advertiser", "advertiserId must be a whole number.");
            }

            if (!caller.MaySee(id) || !await _store.AdvertiserExistsAsync(id, ct))
            {
                return NotFoundProblem.UnknownAdvertiser();
            }

            scope = id;
        }

        var to = QueryRange.Floor(_time.GetUtcNow(), TimeSpan.FromMinutes(1)).AddMinutes(1);
        var from = to.AddMinutes(-minutes);
        var completeThrough = await CompleteThroughAsync(ct);
        var final = to <= completeThrough;
        var key = _cache.Key(caller, $"top?from={from:O}&to={to:O}&limit={count}&advertiserId={scope}");
        var (answer, overloaded) = await CachedAsync(key, final, scope, QueryJsonContext.Default.TopAdsResponse, async () =>
            new TopAdsResponse(windowName, scope, from, to, completeThrough, final, await _store.TopAsync(from, to, count, scope, ct)), ct);
        return answer is not null ? answer : overloaded!;
    }

    /// <summary>GET /v1/advertisers: the advertisers the caller may see (an advertiser key: itself).</summary>
    public async Task<Results<JsonAnswer<AdvertisersResponse>, BadRequestProblem, OverloadedProblem>> AdvertisersAsync(
        Caller caller, string? after, string? limit, CancellationToken ct)
    {
        if (CountParameter("limit", limit, 100, MaxAdvertisersPage, out var count) is { } invalidLimit)
        {
            return invalidLimit;
        }

        var cursor = 0L;
        if (after is not null && !IdRouteConstraint.TryParse(after, out cursor))
        {
            return new BadRequestProblem("invalid-after", "after must be an advertiser id (the next value of the previous page).");
        }

        using var slot = await DatabaseSlotAsync(null, ct);
        if (!slot.IsAcquired)
        {
            return Overloaded(slot);
        }

        var advertisers = await _store.AdvertisersAsync(caller.IsAdmin ? null : caller.AdvertiserId, cursor, count + 1, ct);
        var next = advertisers.Count > count ? advertisers[count - 1].AdvertiserId : (long?)null;
        return new JsonAnswer<AdvertisersResponse>(new AdvertisersResponse(advertisers.Take(count).ToList(), next), QueryJsonContext.Default.AdvertisersResponse);
    }

    /// <summary>
    /// GET /v1/advertisers/{advertiserId}/ads: a page of the advertiser's ads, in id order; with <paramref name="q"/> only
    /// the ads whose id is q or whose URL contains it, found among at most <c>Query:SearchScanAds</c> ads per page.
    /// </summary>
    public async Task<Results<JsonAnswer<AdsResponse>, BadRequestProblem, NotFoundProblem, OverloadedProblem>> AdsAsync(
        Caller caller, long advertiserId, string? after, string? limit, string? q, CancellationToken ct)
    {
        if (!caller.MaySee(advertiserId) || !await _store.AdvertiserExistsAsync(advertiserId, ct))
        {
            return NotFoundProblem.UnknownAdvertiser();
        }

        if (CountParameter("limit", limit, 100, MaxAdsPage, out var count) is { } invalidLimit)
        {
            return invalidLimit;
        }

        var cursor = 0L;
        if (after is not null && !IdRouteConstraint.TryParse(after, out cursor))
        {
            return new BadRequestProblem("invalid-after", "after must be an ad id (the next value of the previous page).");
        }

        var text = q?.Trim();
        if (text is not null && (text.Length is 0 or > MaxSearchLength || text.Any(char.IsControl)))
        {
            return new BadRequestProblem("invalid-query", $"q must be an ad id or part of an ad's URL: 1 to {MaxSearchLength} characters, none of them control characters.");
        }

        using var slot = await DatabaseSlotAsync(advertiserId, ct);
        if (!slot.IsAcquired)
        {
            return Overloaded(slot);
        }

        List<AdSummary> ads;
        long? next;
        if (text is null)
        {
            ads = await _store.AdsPageAsync(advertiserId, cursor, count + 1, ct);
            next = ads.Count > count ? ads[count - 1].AdId : null;
        }
        else
        {
            // A page ends at its limit of matches or after SearchScanAds ads, whichever comes first: a search of an
            // advertiser with many ads costs the same per request and goes on from next.
            var (matches, more, lastScanned) = await _store.SearchAdsPageAsync(
                advertiserId, cursor, _options.SearchScanAds, IdRouteConstraint.TryParse(text, out var id) ? id : null, text, count + 1, ct);
            ads = matches;
            next = matches.Count > count ? matches[count - 1].AdId : more ? lastScanned : null;
        }

        return new JsonAnswer<AdsResponse>(new AdsResponse(advertiserId, ads.Take(count).ToList(), next), QueryJsonContext.Default.AdsResponse);
    }

    /// <summary>GET /v1/reconciliation/runs: the latest reconciliation runs (admin keys only: runs span every advertiser).</summary>
    public async Task<Results<JsonAnswer<ReconciliationRunsResponse>, BadRequestProblem, OverloadedProblem>> ReconciliationRunsAsync(
        string? last, CancellationToken ct)
    {
        if (CountParameter("last", last, 50, MaxRuns, out var count) is { } invalidLast)
        {
            return invalidLast;
        }

        using var slot = await DatabaseSlotAsync(null, ct);
        if (!slot.IsAcquired)
        {
            return Overloaded(slot);
        }

        var runs = await _store.ReconciliationRunsAsync(count, ct);
        return new JsonAnswer<ReconciliationRunsResponse>(new ReconciliationRunsResponse(runs), QueryJsonContext.Default.ReconciliationRunsResponse);
    }

    /// <summary>
    /// The answer from the cache (final ranges only) or computed in a database slot (of <paramref name="advertiser"/>'s
    /// share, for an answer about one advertiser); or, when no slot frees up in time, the refusal.
    /// </summary>
    private async Task<(JsonAnswer<T>? Answer, OverloadedProblem? Overloaded)> CachedAsync<T>(
        string key, bool final, long? advertiser, JsonTypeInfo<T> type, Func<Task<T>> compute, CancellationToken ct)
    {
        var body = await _cache.GetAsync(key, final, ct);
        if (body is null)
        {
            using var slot = await DatabaseSlotAsync(advertiser, ct);
            if (!slot.IsAcquired)
            {
                return (null, Overloaded(slot));
            }

            body = JsonSerializer.SerializeToUtf8Bytes(await compute(), type);
            _cache.Set(key, final, body);
        }

        return (new JsonAnswer<T>(body), null);
    }

    public void Dispose()
    {
        _databaseSlots.Dispose();
        _advertiserSlots.Dispose();
    }

    /// <summary>
    /// Waits (first come, first served) for one of the slots that bound concurrent database work: first, for a query
    /// about <paramref name="advertiser"/>, for one of that advertiser's share of them. Both waits together are bounded
    /// by <see cref="QueryOptions.QueueTimeout"/>.
    /// </summary>
    private async ValueTask<RateLimitLease> DatabaseSlotAsync(long? advertiser, CancellationToken ct)
    {
        // Free slots with nobody waiting: no timer needed.
        var share = advertiser is { } id ? _advertiserSlots.AttemptAcquire(id) : null;
        var slot = share is null or { IsAcquired: true } ? _databaseSlots.AttemptAcquire(1) : null;
        if (slot is { IsAcquired: true })
        {
            return share is null ? slot : new Leases(share, slot);
        }

        slot?.Dispose();
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(ct);
        timeout.CancelAfter(_options.QueueTimeout);
        try
        {
            if (share is { IsAcquired: false })
            {
                share.Dispose();
                share = null;
                var waited = await _advertiserSlots.AcquireAsync(advertiser!.Value, 1, timeout.Token);
                if (!waited.IsAcquired)
                {
                    return waited;
                }

                share = waited;
            }

            slot = await _databaseSlots.AcquireAsync(1, timeout.Token);
            if (!slot.IsAcquired || share is null)
            {
                share?.Dispose();
                return slot;
            }

            return new Leases(share, slot);
        }
        catch (OperationCanceledException) when (!ct.IsCancellationRequested)
        {
            share?.Dispose();
            return TimedOut.Instance;
        }
        catch
        {
            share?.Dispose();
            throw;
        }
    }

    /// <summary>An advertiser's share and a database slot, held and given back together.</summary>
    private sealed class Leases(RateLimitLease share, RateLimitLease slot) : RateLimitLease
    {
        public override bool IsAcquired => true;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }

        protected override void Dispose(bool disposing)
        {
            if (disposing)
            {
                slot.Dispose();
                share.Dispose();
            }

            base.Dispose(disposing);
        }
    }

    private OverloadedProblem Overloaded(RateLimitLease lease)
    {
        var reason = lease is TimedOut ? "queue-timeout" : "queue-full";
        QueryMetrics.Overloaded.Add(1, new KeyValuePair<string, object?>("reason", reason));
        return new OverloadedProblem(
            reason == "queue-timeout" ? $"No database slot freed up within {_options.QueueTimeout.TotalSeconds:0.#} s." : $"{_options.QueueLimit} requests are already waiting.");
    }

    /// <summary>
    /// completeThrough, read at most once a second: it only moves forward, so a value up to a second old can only
    /// call a bucket partial that just became final, never the reverse.
    /// </summary>
    private async Task<DateTimeOffset?> CompleteThroughAsync(CancellationToken ct)
    {
        var cached = _completeThrough;
        var now = _time.GetTimestamp();
        if (cached is not null && _time.GetElapsedTime(cached.At, now) < CompleteThroughTtl)
        {
            return cached.Value;
        }

        var value = await _store.CompleteThroughAsync(ct);
        _completeThrough = new Watermark(now, value);
        return value;
    }

    /// <summary>Hours from here on are read from the minutes: the refresh job may not have seen them yet.</summary>
    private DateTimeOffset TailStart(DateTimeOffset? completeThrough)
    {
        var now = _time.GetUtcNow();
        return QueryRange.Floor(completeThrough is { } c && c < now ? c : now, TimeSpan.FromHours(1));
    }

    private static List<ClickPoint> Points(QueryRange range, DateTimeOffset[] starts, long[] clicks, DateTimeOffset? completeThrough)
    {
        var points = new List<ClickPoint>(starts.Length);
        for (var i = 0; i < starts.Length; i++)
        {
            var end = i + 1 < starts.Length ? starts[i + 1] : range.To;
            points.Add(new ClickPoint(starts[i], clicks[i], end <= completeThrough));
        }

        return points;
    }

    private static string Canonical(QueryRange range) =>
        $"from={range.From:O}&to={range.To:O}&granularity={range.GranularityName}&tz={range.TimeZoneName}";

    /// <summary>
    /// A "how many" parameter: <paramref name="fallback"/> when absent, else a whole number from 1 to
    /// <paramref name="max"/>; the problem (reason invalid-limit) when it is not.
    /// </summary>
    private static BadRequestProblem? CountParameter(string name, string? text, int fallback, int max, out int count)
    {
        count = fallback;
        return text is null || (int.TryParse(text, NumberStyles.None, CultureInfo.InvariantCulture, out count) && count is >= 1 && count <= max)
            ? null
            : new BadRequestProblem("invalid-limit", $"{name} must be a whole number between 1 and {max}.");
    }

    private static bool TryParseWindow(string text, out int minutes)
    {
        minutes = 0;
        if (text.Length < 2 || !int.TryParse(text.AsSpan(0, text.Length - 1), NumberStyles.None, CultureInfo.InvariantCulture, out var n))
        {
            return false;
        }

        minutes = text[^1] switch
        {
            'm' => n,
            'h' when n <= MaxTopWindowMinutes / 60 => n * 60,
            _ => 0,
        };
        return minutes is >= 1 and <= MaxTopWindowMinutes;
    }

    private sealed record Watermark(long At, DateTimeOffset? Value);

    /// <summary>A lease that was not granted because the wait for it timed out.</summary>
    private sealed class TimedOut : RateLimitLease
    {
        public static readonly TimedOut Instance = new();

        public override bool IsAcquired => false;

        public override IEnumerable<string> MetadataNames => [];

        public override bool TryGetMetadata(string metadataName, out object? metadata)
        {
            metadata = null;
            return false;
        }
    }
}
