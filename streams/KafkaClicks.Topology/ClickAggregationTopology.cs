using KafkaClicks.Contracts;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Processors;
using Streamiz.Kafka.Net.Processors.Public;
using Streamiz.Kafka.Net.SerDes;
using Streamiz.Kafka.Net.State;

namespace KafkaClicks.Topology;

/// <summary>An internal topic Streamiz needs, to be created up front where the broker cannot create topics.</summary>
public sealed record InternalTopic(string Name, int Partitions, IReadOnlyDictionary<string, string> Configs);

/// <summary>
/// The aggregation topology as a pure function: clicks.raw (already partitioned by ad and salt, so no repartition)
/// through <see cref="ClickCounter"/> to clicks.minute (minute counts and, to every partition, each task's
/// <see cref="FinalProgress"/> markers) and clicks.late.
/// </summary>
public static class ClickAggregationTopology
{
    /// <summary>RocksDB window store of impressions seen, per partition of clicks.raw.</summary>
    public const string ImpressionStore = "impressions";

    /// <summary>
    /// Impressions are filed under 10-minute buckets of their issue time, each a segment of the store. Fixed, whatever
    /// the impression lifetime: the segments on disk are named by it, and a store reopened with another bucket size
    /// would not find the impressions it holds.
    /// </summary>
    public const long ImpressionBucketMs = 10 * TimeBuckets.MinuteMs;

    /// <summary>How far back from the newest window a restarted task reopens windows from the store (see ClickCounter.Rebuild).</summary>
    public const long RebuildSpanMs = 20 * TimeBuckets.MinuteMs;

    /// <summary>
    /// The topology reading and writing the topics <paramref name="names"/> gives (default: no prefix), its tasks sending
    /// progress markers as <paramref name="markers"/> says.
    /// </summary>
    public static Streamiz.Kafka.Net.Stream.Topology Build(AggregationOptions options, FinalProgressMarkers markers, KafkaNames? names = null)
    {
        names ??= KafkaNames.Default;
        var builder = new StreamBuilder();
        var store = ImpressionStoreBuilder(options);
        var outputs = builder
            .Stream(names.ClicksRaw, new StringSerDes(), new AvroSerDes<ClickEvent>(ContractCodecs.ClickEvent))
            .Transform(TransformerBuilder.New<string, ClickEvent, string, AggregatorOutput>()
                .Transformer<ClickCounter>(options, markers)
                .StateStore(store)
                .Build(), "click-counter");

        var branches = outputs.Branch((_, v, _) => v.Count is not null, (_, v, _) => v.Late is not null, (_, v, _) => v.Progress is not null);
        // No stream partitioner (null): the producer partitions by key. Streamiz' default partitioner would look up the
        // topic's partition count for every record sent, which cost the stream thread a quarter of its time.
        branches[0].MapValues((v, _) => v.Count!).To(
            new FixedTopic<string, MinuteCount>(names.ClicksMinute), null!, new StringSerDes(), new AvroSerDes<MinuteCount>(ContractCodecs.MinuteCount));
        branches[1].MapValues((v, _) => v.Late!).To(
            new FixedTopic<string, ClickEvent>(names.ClicksLate), null!, new StringSerDes(), new AvroSerDes<ClickEvent>(ContractCodecs.ClickEvent));
        // Markers name their clicks.minute partition; sent by the same producer after the finals they cover, each lands
        // behind every final of its task in that partition. (Only markers pay the partitioner's partition-count lookup.)
        branches[2].MapValues((v, _) => v.Progress!).To(
            new FixedTopic<string, FinalProgress>(names.ClicksMinute), new FinalProgressMarkers.Partitioner(markers), new StringSerDes(),
            new AvroSerDes<FinalProgress>(ContractCodecs.FinalProgress));
        return builder.Build();
    }

    /// <summary>The impression store: RocksDB segments of <see cref="ImpressionBucketMs"/>, changelogged, no cache.</summary>
    internal static IStoreBuilder<IWindowStore<string, SeenImpression>> ImpressionStoreBuilder(AggregationOptions options)
    {
        var retention = ImpressionRetention(options);
        return Stores.WindowStoreBuilder(
                Stores.PersistentWindowStore(ImpressionStore, retention, TimeSpan.FromMilliseconds(ImpressionBucketMs), ImpressionBucketMs, false),
                new StringSerDes(), new SeenImpressionSerDes())
            .WithCachingDisabled()
            .WithLoggingEnabled(new Dictionary<string, string> { ["retention.ms"] = ((long)retention.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture) });
    }

    private sealed class FixedTopic<TKey, TValue>(string topic) : ITopicNameExtractor<TKey, TValue>
    {
        public string Extract(TKey key, TValue value, IRecordContext recordContext) => topic;
    }

    /// <summary>
    /// Streamiz' internal topics for this topology run as <paramref name="applicationId"/>: the impression store's
    /// changelog, partitioned like clicks.raw.
    /// </summary>
    public static IReadOnlyList<InternalTopic> InternalTopics(string applicationId, AggregationOptions options, int rawPartitions) =>
    [
        new($"{applicationId}-{ImpressionStore}-changelog", rawPartitions, new Dictionary<string, string>
        {
            ["cleanup.policy"] = "compact,delete",
            ["retention.ms"] = ((long)ImpressionRetention(options).TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture),
        }),
    ];

    /// <summary>
    /// How long the store keeps a bucket of impressions past the store's time (the newest bucket written, at most a bucket
    /// past the clock): the impression lifetime, within which its clicks come, plus a window and its grace within which
    /// they are processed, plus the rebuild span so every window a restart reopens is whole, plus a bucket for the
    /// bucket's own width and one for the store's time being up to a bucket ahead, plus a minute for clocks.
    /// </summary>
    public static TimeSpan ImpressionRetention(AggregationOptions options) =>
        options.ImpressionLifetime + AggregationOptions.WindowSize + options.Grace
        + TimeSpan.FromMilliseconds(RebuildSpanMs + (2 * ImpressionBucketMs)) + TimeSpan.FromMinutes(1);
}
