namespace KafkaClicks.Contracts;

/// <summary>
/// Declaration of one topic. The same declaration is used for the embedded (librdkafka mock) broker
/// and for a real Kafka cluster; the mock ignores <see cref="Configs"/> and caps the replication factor
/// at its broker count.
/// </summary>
/// <param name="Name">Topic name.</param>
/// <param name="Partitions">Partition count (must be positive).</param>
/// <param name="ReplicationFactor">Replication factor on a real cluster (-1 = broker default).</param>
/// <param name="Configs">Topic configs for a real cluster, e.g. cleanup.policy, retention.ms.</param>
public sealed record TopicSpec(
    string Name,
    int Partitions,
    short ReplicationFactor,
    IReadOnlyDictionary<string, string> Configs)
{
    private static readonly IReadOnlyDictionary<string, string> NoConfigs = new Dictionary<string, string>();

    /// <summary>A topic with replication factor 1 and no configs.</summary>
    public TopicSpec(string name, int partitions)
        : this(name, partitions, 1, NoConfigs)
    {
    }

    /// <summary>A topic with no configs.</summary>
    public TopicSpec(string name, int partitions, short replicationFactor)
        : this(name, partitions, replicationFactor, NoConfigs)
    {
    }

    /// <summary>Throws <see cref="ArgumentException"/> when the declaration cannot be created anywhere.</summary>
    public void Validate()
    {
        if (string.IsNullOrWhiteSpace(Name))
        {
            throw new ArgumentException("Topic name must not be empty.", nameof(Name));
        }

        if (Partitions <= 0)
        {
            throw new ArgumentException($"Topic '{Name}': partitions must be positive, was {Partitions}.", nameof(Partitions));
        }

        if (ReplicationFactor == 0 || ReplicationFactor < -1)
        {
            throw new ArgumentException($"Topic '{Name}': replication factor must be positive or -1, was {ReplicationFactor}.", nameof(ReplicationFactor));
        }

        ArgumentNullException.ThrowIfNull(Configs);
    }

    /// <summary>Well-known topic config keys.</summary>
    public static class ConfigKeys
    {
        /// <summary>cleanup.policy: delete, compact or "compact,delete".</summary>
        public const string CleanupPolicy = "cleanup.policy";

        /// <summary>retention.ms.</summary>
        public const string RetentionMs = "retention.ms";

        /// <summary>min.insync.replicas: how many replicas must hold a record before an acks=all write is acknowledged.</summary>
        public const string MinInSyncReplicas = "min.insync.replicas";
    }
}
