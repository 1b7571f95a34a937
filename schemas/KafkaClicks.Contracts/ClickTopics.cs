using System.Globalization;

namespace KafkaClicks.Contracts;

/// <summary>
/// The declarations (partitions, replication, configs) of the topics every role agrees on: the one source for the
/// embedded broker and for provisioning a real cluster. clicks.raw is deleted by age only, never compacted: compaction
/// keeps the last click of an impression, while the stream counts the first, so a recount after the cleaner ran would
/// move repeated impressions to the minute of their last click. Every topic gets <c>min.insync.replicas</c>, so that
/// acks=all means that many copies.
/// </summary>
public static class ClickTopics
{
    /// <summary>clicks.raw, clicks.minute and clicks.late of the deployment named by <paramref name="names"/>.</summary>
    public static IReadOnlyList<TopicSpec> Declare(KafkaNames names, int rawPartitions, int minutePartitions, int latePartitions,
        TimeSpan rawRetention, short replicationFactor, int minInSyncReplicas) =>
    [
        Durable(new TopicSpec(names.ClicksRaw, rawPartitions, replicationFactor, new Dictionary<string, string>
        {
            [TopicSpec.ConfigKeys.CleanupPolicy] = "delete",
            [TopicSpec.ConfigKeys.RetentionMs] = ((long)rawRetention.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
        }), minInSyncReplicas),
        Durable(new TopicSpec(names.ClicksMinute, minutePartitions, replicationFactor), minInSyncReplicas),
        Durable(new TopicSpec(names.ClicksLate, latePartitions, replicationFactor), minInSyncReplicas),
    ];

    /// <summary><paramref name="topic"/> with <c>min.insync.replicas</c> = min(<paramref name="minInSyncReplicas"/>, its replication factor).</summary>
    public static TopicSpec Durable(TopicSpec topic, int minInSyncReplicas)
    {
        var configs = topic.Configs.ToDictionary(kv => kv.Key, kv => kv.Value);
        configs[TopicSpec.ConfigKeys.MinInSyncReplicas] =
            Math.Min(minInSyncReplicas, topic.ReplicationFactor).ToString(CultureInfo.InvariantCulture);
        return topic with { Configs = configs };
    }
}
