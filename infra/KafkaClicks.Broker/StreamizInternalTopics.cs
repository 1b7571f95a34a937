using KafkaClicks.Contracts;
namespace KafkaClicks.Broker;

/// <summary>
/// Names and declarations of the internal topics a Streamiz (Kafka Streams) application uses, so they can be
/// created up front where the broker cannot create topics (the embedded mock rejects CreateTopics and
/// Streamiz then ends in state ERROR after ~45 s of retries).
/// Naming (checked with Streamiz 1.8.2): changelog "{applicationId}-{storeName}-changelog";
/// repartition "{applicationId}-{name}-repartition", where name is the Grouped/Repartitioned name, or, for
/// GroupBy(...).Count/Aggregate(Materialized named "store"), the store name.
/// Partition count: the partition count of the sub-topology's source topics (one task per partition).
/// </summary>
public static class StreamizInternalTopics
{
    private static readonly IReadOnlyDictionary<string, string> Compact =
        new Dictionary<string, string> { [TopicSpec.ConfigKeys.CleanupPolicy] = "compact" };

    private static readonly IReadOnlyDictionary<string, string> Delete =
        new Dictionary<string, string> { [TopicSpec.ConfigKeys.CleanupPolicy] = "delete" };

    /// <summary>"{applicationId}-{storeName}-changelog".</summary>
    public static string Changelog(string applicationId, string storeName) => $"{applicationId}-{storeName}-changelog";

    /// <summary>"{applicationId}-{name}-repartition".</summary>
    public static string Repartition(string applicationId, string name) => $"{applicationId}-{name}-repartition";

    /// <summary>
    /// Declarations for the changelogs of <paramref name="storeNames"/> and the repartition topics
    /// <paramref name="repartitionNames"/>, all with <paramref name="partitions"/> partitions.
    /// Changelogs default to cleanup.policy=compact (never loses a key's latest value; pass
    /// "compact,delete" plus retention.ms for window stores to bound them on a real cluster);
    /// repartition topics to cleanup.policy=delete. Configs are ignored by the embedded broker.
    /// </summary>
    public static IReadOnlyList<TopicSpec> For(
        string applicationId,
        IEnumerable<string> storeNames,
        int partitions,
        IEnumerable<string>? repartitionNames = null,
        short replicationFactor = 1,
        IReadOnlyDictionary<string, string>? changelogConfigs = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(applicationId);
        ArgumentNullException.ThrowIfNull(storeNames);
        var specs = storeNames
            .Select(s => new TopicSpec(Changelog(applicationId, s), partitions, replicationFactor, changelogConfigs ?? Compact))
            .ToList();
        if (repartitionNames is not null)
        {
            specs.AddRange(repartitionNames.Select(r => new TopicSpec(Repartition(applicationId, r), partitions, replicationFactor, Delete)));
        }

        return specs;
    }
}
