using System.ComponentModel.DataAnnotations;
using Confluent.Kafka;
using Microsoft.Extensions.Configuration;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// Section <c>Kafka</c>. Client settings are bound straight onto Confluent's config classes from
/// <c>Kafka:Client</c> (every client), <c>Kafka:Producer</c> and <c>Kafka:Consumer</c>, so any librdkafka
/// property can be set without code changes.
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

    /// <summary>Replication factor for topics this system creates on a real cluster.</summary>
    [Range(1, 16)]
    public short ReplicationFactor { get; set; } = 1;

    /// <summary>Retention of clicks.raw on a real cluster.</summary>
    public TimeSpan RawRetention { get; set; } = TimeSpan.FromDays(7);

    /// <summary>A producer config: Kafka:Client then Kafka:Producer bound over safe defaults (idempotent, acks=all, lz4).</summary>
    public static ProducerConfig ProducerConfig(IConfiguration configuration)
    {
        var config = new ProducerConfig
        {
            EnableIdempotence = true,
            Acks = Acks.All,
            CompressionType = CompressionType.Lz4,
            LingerMs = 2,
            MessageTimeoutMs = 30_000,
        };
        Bind(configuration, config, "Producer");
        return config;
    }

    /// <summary>A consumer config for <paramref name="groupId"/>: manual offset storage, earliest reset.</summary>
    public static ConsumerConfig ConsumerConfig(IConfiguration configuration, string groupId)
    {
        var config = new ConsumerConfig
        {
            GroupId = groupId,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            EnableAutoCommit = false,
            EnableAutoOffsetStore = false,
            SessionTimeoutMs = 6000,
        };
        Bind(configuration, config, "Consumer");
        return config;
    }

    private static void Bind(IConfiguration configuration, ClientConfig config, string role)
    {
        var section = configuration.GetSection(Section);
        section.GetSection("Client").Bind(config);
        section.GetSection(role).Bind(config);
        var servers = section["BootstrapServers"];
        if (string.IsNullOrWhiteSpace(servers))
        {
            throw new KafkaClicksConfigurationException("Kafka:BootstrapServers is not set and no embedded broker was started.");
        }

        config.BootstrapServers = servers;
    }
}
