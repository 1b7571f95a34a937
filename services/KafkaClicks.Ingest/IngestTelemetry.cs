using System.Collections.Concurrent;
using System.Diagnostics;
using System.Diagnostics.Metrics;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.Ingest;

/// <summary>Why a click or impression request ended as it did; the values are the metric's <c>outcome</c> tag.</summary>
public enum ClickOutcome
{
    Counted,
    CountedUnchecked,
    Duplicate,
    Expired,
    Malformed,
    Forged,
    UnknownAd,
    UnroutableAd,
    Oversized,
    Unavailable,
}

/// <summary>The ingest role's one ActivitySource and Meter.</summary>
public static class IngestTelemetry
{
    public const string Name = "KafkaClicks.Ingest";
    public static readonly ActivitySource Source = new(Name);
    private static readonly Meter Meter = ServiceDefaultsExtensions.CreateMeter("Ingest");

    private static readonly Counter<long> Clicks = Meter.CreateCounter<long>(
        "kafkaclicks.ingest.clicks", "{click}", "Click requests by outcome.");

    private static readonly Counter<long> Impressions = Meter.CreateCounter<long>(
        "kafkaclicks.ingest.impressions", "{impression}", "Impression tokens minted.");

    private static readonly Counter<long> AdLookups = Meter.CreateCounter<long>(
        "kafkaclicks.ingest.ad_lookups", "{lookup}", "Ad lookups by where they were answered: cache, directory (the local copy) or database.");

    private static readonly Histogram<double> ProduceLatency = Meter.CreateHistogram<double>(
        "kafkaclicks.ingest.produce.duration", "s", "Time from produce to broker acknowledgement.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = ServiceDefaultsExtensions.LatencyBucketsSeconds });

    private static readonly ConcurrentDictionary<ClickEventProducer, byte> Producers = new();

    // Kept for the process's lifetime: the meter reads it on every scrape.
    private static readonly ObservableGauge<int> PartitionCountMismatch = Meter.CreateObservableGauge(
        "kafkaclicks.ingest.partition_count_mismatch",
        () => new Measurement<int>(Producers.Keys.Any(p => p.Refusal is not null) ? 1 : 0, new KeyValuePair<string, object?>("topic", Topics.ClicksRaw)),
        description: "1 while clicks.raw's partition count differs from the recorded one (Kafka:ClicksRawPartitions), so clicks are spooled, not produced.");

    private static readonly string[] OutcomeTags = Enum.GetValues<ClickOutcome>().Select(ToTag).ToArray();

    public static void Click(ClickOutcome outcome) =>
        Clicks.Add(1, new KeyValuePair<string, object?>("outcome", OutcomeTags[(int)outcome]));

    /// <summary>Reports <paramref name="producer"/>'s refusals in <c>kafkaclicks_ingest_partition_count_mismatch</c> until <see cref="Unwatch"/>.</summary>
    public static void Watch(ClickEventProducer producer) => Producers.TryAdd(producer, 0);

    public static void Unwatch(ClickEventProducer producer) => Producers.TryRemove(producer, out _);

    public static void Impression() => Impressions.Add(1);

    public static void AdLookup(string source) => AdLookups.Add(1, new KeyValuePair<string, object?>("source", source));

    public static void Produced(TimeSpan elapsed, bool ok) =>
        ProduceLatency.Record(elapsed.TotalSeconds, new KeyValuePair<string, object?>("result", ok ? "acked" : "failed"));

    private static string ToTag(ClickOutcome outcome) => outcome switch
    {
        ClickOutcome.CountedUnchecked => "counted_unchecked",
        ClickOutcome.UnknownAd => "unknown_ad",
        ClickOutcome.UnroutableAd => "unroutable_ad",
        _ => outcome.ToString().ToLowerInvariant(),
    };
}
