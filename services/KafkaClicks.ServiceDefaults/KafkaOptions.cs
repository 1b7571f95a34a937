using System.ComponentModel.DataAnnotations;
using KafkaClicks.Contracts;
using Microsoft.Extensions.Configuration;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// Section <c>Kafka</c>. Client settings come from <c>Kafka:Client</c> (every client), <c>Kafka:Producer</c> and
/// <c>Kafka:Consumer</c>, so any librdkafka property can be set without code changes: <see cref="KafkaClientFactory"/>
/// builds every client from them.
/// </summary>
public sealed class KafkaOptions
{
    public const string Section = "Kafka";

    /// <summary>Brokers of a real cluster. Empty: the process starts the embedded broker and fills this in.</summary>
    public string? BootstrapServers { get; set; }

    /// <summary>Partitions of clicks.raw (and of the aggregator's internal topics).</summary>
    [Range(1, 10_000)]
    public int ClicksRawPartitions { get; set; } = 32;

    /// <summary>Partitions of clicks.minute.</summary>
    [Range(1, 10_000)]
    public int ClicksMinutePartitions { get; set; } = 8;

    /// <summary>Partitions of clicks.late.</summary>
    [Range(1, 10_000)]
    public int ClicksLatePartitions { get; set; } = 4;

    /// <summary>
    /// Replication factor for topics this system creates on a real cluster (the embedded broker caps it at its one
    /// broker). 3 by default: a click acknowledged with acks=all then survives the loss of a broker.
    /// </summary>
    [Range(1, 16)]
    public short ReplicationFactor { get; set; } = 3;

    /// <summary>
    /// <c>min.insync.replicas</c> of the topics this system creates on a real cluster, capped at
    /// <see cref="ReplicationFactor"/>: with the default 2, an acks=all write (every click, count and changelog record) is
    /// acknowledged only once two replicas hold it, and refused rather than kept by one when only one is left.
    /// </summary>
    [Range(1, 16)]
    public short MinInSyncReplicas { get; set; } = 2;

    /// <summary>Retention of clicks.raw on a real cluster.</summary>
    public TimeSpan RawRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// Put before every topic, consumer group and Streamiz application id this deployment uses, so several deployments
    /// (or test runs) can share one cluster. Empty by default. Letters, digits, '.', '_' and '-' only, as topic names allow.
    /// </summary>
    [RegularExpression("^[A-Za-z0-9._-]{0,100}$", ErrorMessage = "Kafka:NamePrefix may hold letters, digits, '.', '_' and '-' only (at most 100).")]
    public string NamePrefix { get; set; } = string.Empty;

    /// <summary>The topic and group names of this deployment.</summary>
    public KafkaNames Names => new(NamePrefix ?? string.Empty);

    /// <summary>The topic and group names the configuration's <c>Kafka:NamePrefix</c> gives.</summary>
    public static KafkaNames NamesOf(IConfiguration configuration) => new(configuration[$"{Section}:NamePrefix"] ?? string.Empty);
}
