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
    /// The topology reading and writing the topics <paramref name="names"/> gives (default: no prefix), its tasks sending
    /// progress markers as <paramref name="markers"/> says.
    /// </summary>
    public static Streamiz.Kafka.Net.Stream.Topology Build(AggregationOptions options, FinalProgressMarkers markers, KafkaNames? names = null)
    {
        names ??= KafkaNames.Default;
        var builder = new StreamBuilder();
        var retention = ImpressionRetention(options);
        var store = Stores.WindowStoreBuilder(
                Stores.PersistentWindowStore(ImpressionStore, retention, options.DedupeHorizon,
                    (long)options.DedupeHorizon.TotalMilliseconds, false),
                new StringSerDes(), new SeenImpressionSerDes())
            .WithCachingDisabled()
            .WithLoggingEnabled(new Dictionary<string, string> { ["retention.ms"] = ((long)retention.TotalMilliseconds).ToString(System.Globalization.CultureInfo.InvariantCulture) });

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
    /// Impressions are filed under horizon-sized buckets and looked up in three of them, so the store keeps three
    /// horizons, plus a window and its grace so the counts of every open window can be rebuilt from it.
    /// </summary>
    private static TimeSpan ImpressionRetention(AggregationOptions options) =>
        (3 * options.DedupeHorizon) + AggregationOptions.WindowSize + options.Grace + TimeSpan.FromMinutes(1);
}
