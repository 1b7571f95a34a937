using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Broker;

[Trait("Storage", "none")]
[Collection(EmbeddedKafkaTests.Name)]
public sealed class EmbeddedBrokerTests(BrokerFixture broker)
{
    [Fact]
    public async Task Idempotent_acks_all_producer_and_consumer_group_round_trip_10k_messages_on_32_partitions()
    {
        const int count = 10_000;
        const int partitions = 32;
        var topic = broker.CreateTopic("roundtrip", partitions);

        using (var producer = new ProducerBuilder<string, string>(broker.ProducerConfig()).Build())
        {
            var pending = new List<Task<DeliveryResult<string, string>>>(count);
            for (var i = 0; i < count; i++)
            {
                pending.Add(producer.ProduceAsync(topic, new Message<string, string> { Key = $"k{i}", Value = $"v{i}" }));
            }

            var results = await Task.WhenAll(pending);
            Assert.All(results, r => Assert.Equal(PersistenceStatus.Persisted, r.Status));
            Assert.Equal(partitions, results.Select(r => r.Partition.Value).Distinct().Count());
        }

        var seen = new HashSet<string>();
        var seenPartitions = new HashSet<int>();
        using (var consumer = new ConsumerBuilder<string, string>(broker.ConsumerConfig("roundtrip")).Build())
        {
            consumer.Subscribe(topic);
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (seen.Count < count && DateTime.UtcNow < deadline)
            {
                var cr = consumer.Consume(TimeSpan.FromMilliseconds(500));
                if (cr is null)
                {
                    continue;
                }

                Assert.Equal("v" + cr.Message.Key[1..], cr.Message.Value);
                seen.Add(cr.Message.Key);
                seenPartitions.Add(cr.Partition.Value);
            }

            consumer.Commit();
            consumer.Close();
        }

        Assert.Equal(count, seen.Count);
        Assert.Equal(partitions, seenPartitions.Count);
    }

    [Theory]
    [InlineData(1)]
    [InlineData(7)]
    [InlineData(32)]
    public void Topic_metadata_shows_the_declared_partition_count(int partitions)
    {
        var topic = broker.CreateTopic("meta", partitions);

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        var md = admin.GetMetadata(topic, TimeSpan.FromSeconds(10));

        var t = Assert.Single(md.Topics);
        Assert.False(t.Error.IsError, t.Error.Reason);
        Assert.Equal(partitions, t.Partitions.Count);
        Assert.Equal(partitions, broker.Cluster.PartitionCount(topic, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void Creating_an_existing_topic_again_with_the_same_partitions_is_accepted()
    {
        var topic = broker.CreateTopic("again", 3);
        broker.Cluster.CreateTopic(new KafkaClicks.Contracts.TopicSpec(topic, 3));
        Assert.Equal(3, broker.Cluster.PartitionCount(topic, TimeSpan.FromSeconds(10)));
    }

    [Fact]
    public void Redeclaring_a_topic_with_another_partition_count_throws()
    {
        var topic = broker.CreateTopic("mismatch", 3);
        var ex = Assert.Throws<InvalidOperationException>(() => broker.Cluster.CreateTopic(new KafkaClicks.Contracts.TopicSpec(topic, 8)));
        Assert.Contains("3 partitions", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Two_independent_clients_see_the_same_cluster_and_data()
    {
        var topic = broker.CreateTopic("shared", 4);

        using var adminA = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers, ClientId = "a" }).Build();
        using var adminB = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers, ClientId = "b" }).Build();
        var mdA = adminA.GetMetadata(TimeSpan.FromSeconds(10));
        var mdB = adminB.GetMetadata(TimeSpan.FromSeconds(10));
        Assert.Equal(
            mdA.Brokers.Select(b => (b.BrokerId, b.Host, b.Port)).Order(),
            mdB.Brokers.Select(b => (b.BrokerId, b.Host, b.Port)).Order());
        Assert.Contains(mdA.Topics, t => t.Topic == topic);
        Assert.Contains(mdB.Topics, t => t.Topic == topic);

        using (var producer = new ProducerBuilder<string, string>(broker.ProducerConfig()).Build())
        {
            await producer.ProduceAsync(topic, new Message<string, string> { Key = "x", Value = "from-a" });
        }

        using var consumer = new ConsumerBuilder<string, string>(broker.ConsumerConfig("shared")).Build();
        consumer.Subscribe(topic);
        var cr = consumer.Consume(TimeSpan.FromSeconds(30));
        Assert.NotNull(cr);
        Assert.Equal("from-a", cr.Message.Value);
        consumer.Close();
    }
}
