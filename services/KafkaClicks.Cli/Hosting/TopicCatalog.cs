using System.Globalization;
using KafkaClicks.Aggregator;
using KafkaClicks.Broker;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;

namespace KafkaClicks.Cli.Hosting;

/// <summary>Every topic the system uses, with partitions and configs: the one declaration for the embedded broker and real Kafka.</summary>
public static class TopicCatalog
{
    /// <summary>
    /// clicks.raw is deleted by age only, never compacted: compaction keeps the last click of an impression, while the
    /// stream counts the first, so a recount after the cleaner ran would move repeated impressions to the minute of
    /// their last click. Every topic gets <c>min.insync.replicas</c> so that acks=all means two copies.
    /// </summary>
    public static IReadOnlyList<TopicSpec> All(KafkaOptions kafka, IConfiguration configuration)
    {
        var rf = kafka.ReplicationFactor;
        var names = kafka.Names;
        var topics = new List<TopicSpec>
        {
            new(names.ClicksRaw, kafka.ClicksRawPartitions, rf, Durable(kafka, new Dictionary<string, string>
            {
                [TopicSpec.ConfigKeys.CleanupPolicy] = "delete",
                [TopicSpec.ConfigKeys.RetentionMs] = ((long)kafka.RawRetention.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            })),
            new(names.ClicksMinute, kafka.ClicksMinutePartitions, rf, Durable(kafka)),
            new(names.ClicksLate, kafka.ClicksLatePartitions, rf, Durable(kafka)),
        };
        topics.AddRange(AggregatorTopics.Internal(configuration, kafka.ClicksRawPartitions)
            .Select(t => new TopicSpec(t.Name, t.Partitions, rf, Durable(kafka, t.Configs))));
        return topics;
    }

    private static Dictionary<string, string> Durable(KafkaOptions kafka, IReadOnlyDictionary<string, string>? configs = null)
    {
        var durable = configs?.ToDictionary(kv => kv.Key, kv => kv.Value) ?? [];
        durable[TopicSpec.ConfigKeys.MinInSyncReplicas] =
            Math.Min(kafka.MinInSyncReplicas, kafka.ReplicationFactor).ToString(CultureInfo.InvariantCulture);
        return durable;
    }
}
