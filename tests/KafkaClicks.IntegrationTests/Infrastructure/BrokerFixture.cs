using System.Globalization;
using Confluent.Kafka;
using KafkaClicks.Broker;
using KafkaClicks.Contracts;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// One embedded Kafka cluster (librdkafka mock) shared by every test class in the
/// <see cref="EmbeddedKafkaTests"/> collection. Each test creates its own uniquely named topics, so tests
/// never see each other's data and nothing needs cleaning up.
/// </summary>
public sealed class BrokerFixture : IDisposable
{
    private int _counter;

    public BrokerFixture()
    {
        Cluster = new EmbeddedKafkaCluster();
    }

    public EmbeddedKafkaCluster Cluster { get; }

    public string BootstrapServers => Cluster.BootstrapServers;

    /// <summary>Creates a topic named "{prefix}-{n}-{random}" and returns the name.</summary>
    public string CreateTopic(string prefix, int partitions = 8)
    {
        var name = UniqueName(prefix);
        Cluster.CreateTopic(new TopicSpec(name, partitions));
        return name;
    }

    /// <summary>A unique name for topics, consumer groups or application ids.</summary>
    public string UniqueName(string prefix) =>
        string.Create(CultureInfo.InvariantCulture, $"{prefix}-{Interlocked.Increment(ref _counter)}-{Guid.NewGuid().ToString("N")[..8]}");

    /// <summary>Idempotent, acks=all producer settings for this cluster.</summary>
    public ProducerConfig ProducerConfig() => new()
    {
        BootstrapServers = BootstrapServers,
        EnableIdempotence = true,
        Acks = Acks.All,
        LingerMs = 5,
        CompressionType = CompressionType.Lz4,
    };

    /// <summary>Consumer group settings for this cluster (fresh group, earliest, short session timeout for the mock).</summary>
    public ConsumerConfig ConsumerConfig(string groupPrefix = "test-group") => new()
    {
        BootstrapServers = BootstrapServers,
        GroupId = UniqueName(groupPrefix),
        AutoOffsetReset = AutoOffsetReset.Earliest,
        EnableAutoCommit = false,
        SessionTimeoutMs = 6000,
        HeartbeatIntervalMs = 1500,
    };

    public void Dispose() => Cluster.Dispose();
}

/// <summary>Test classes marked [Collection(EmbeddedKafkaTests.Name)] share one <see cref="BrokerFixture"/>.</summary>
[CollectionDefinition(Name)]
public sealed class EmbeddedKafkaTests : ICollectionFixture<BrokerFixture>
{
    public const string Name = "embedded-kafka";
}
