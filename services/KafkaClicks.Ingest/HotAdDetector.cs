using System.Collections.Concurrent;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>Section <c>Ingest:HotAds</c>.</summary>
public sealed class HotAdOptions
{
    /// <summary>
    /// Impressions minted per second on this instance above which an ad is hot. An impression is counted at most once,
    /// so an ad's impression rate bounds the click rate its impressions can bring.
    /// </summary>
    public double ThresholdPerSecond { get; set; } = 300;

    /// <summary>Salts the clicks of a hot ad's new impressions are spread over (partitions adId#0 .. adId#N-1).</summary>
    public int Salts { get; set; } = 8;

    /// <summary>How long an ad stays hot after its rate last exceeded the threshold, so it does not flap.</summary>
    public TimeSpan CoolDown { get; set; } = TimeSpan.FromSeconds(60);
}

/// <summary>
/// A cheap sliding rate of minted impressions per ad on this instance (the current and the previous second, weighted),
/// deciding how many salts a new impression's clicks may be spread over. The decision is made once, when the
/// impression is minted, and travels in its signed token (<see cref="ImpressionMinter"/>), so it never depends on which
/// instance takes a click or when. Memory stays bounded: only ads minted in the last seconds or still hot are tracked,
/// whatever the number of ads in the catalogue.
/// </summary>
public sealed class HotAdDetector : IDisposable
{
    private static readonly TimeSpan PruneEvery = TimeSpan.FromSeconds(10);
    private readonly ConcurrentDictionary<long, AdRate> _rates = new();
    private readonly HotAdOptions _options;
    private readonly TimeProvider _time;
    private readonly ITimer _pruner;

    public HotAdDetector(IOptions<IngestOptions> options, TimeProvider time)
    {
        _options = options.Value.HotAds;
        _time = time;
        _pruner = time.CreateTimer(_ => Prune(), null, PruneEvery, PruneEvery);
    }

    /// <summary>Ads tracked now (recently clicked or hot).</summary>
    public int TrackedAds => _rates.Count;

    /// <summary>Ads that are hot now.</summary>
    public int HotAds
    {
        get
        {
            var second = _time.GetUtcNow().ToUnixTimeSeconds();
            return _rates.Values.Count(r => r.HotUntil >= second);
        }
    }

    /// <summary>Records an impression of <paramref name="adId"/> and returns its salt count: 1 for a normal ad, <see cref="HotAdOptions.Salts"/> for a hot one.</summary>
    public int RecordImpression(long adId)
    {
        var nowMs = _time.GetUtcNow().ToUnixTimeMilliseconds();
        var second = nowMs / 1000;
        var rate = _rates.GetOrAdd(adId, static _ => new AdRate());
        lock (rate)
        {
            if (rate.Second != second)
            {
                rate.Previous = second - rate.Second == 1 ? rate.Current : 0;
                rate.Current = 0;
                rate.Second = second;
            }

            rate.Current++;
            var elapsed = (nowMs % 1000) / 1000.0;
            var estimate = (rate.Previous * (1 - elapsed)) + rate.Current;
            if (estimate > _options.ThresholdPerSecond)
            {
                rate.HotUntil = second + (long)_options.CoolDown.TotalSeconds;
            }

            return rate.HotUntil >= second ? Math.Max(1, _options.Salts) : 1;
        }
    }

    private void Prune()
    {
        var second = _time.GetUtcNow().ToUnixTimeSeconds();
        foreach (var (adId, rate) in _rates)
        {
            if (rate.Second < second - 5 && rate.HotUntil < second)
            {
                _rates.TryRemove(adId, out _);
            }
        }
    }

    public void Dispose() => _pruner.Dispose();

    private sealed class AdRate
    {
        public long Second;
        public int Current;
        public int Previous;
        public long HotUntil = long.MinValue;
    }
}
