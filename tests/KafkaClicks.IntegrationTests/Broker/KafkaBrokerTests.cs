using System.Net;
using System.Net.Sockets;
using Confluent.Kafka;
using KafkaClicks.Broker;

using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Broker;

/// <summary>Tests that start their own embedded clusters (through <see cref="KafkaBroker"/> or directly).</summary>
[Trait("Storage", "none")]
public sealed class KafkaBrokerTests
{
    [Fact]
    public async Task Start_without_bootstrap_servers_starts_an_embedded_cluster_with_every_declared_topic()
    {
        var topics = new[]
        {
            new TopicSpec("clicks.raw", 32, 3, new Dictionary<string, string> { [TopicSpec.ConfigKeys.CleanupPolicy] = "compact,delete" }),
            new TopicSpec("clicks.minute", 8),
        };

        await using var handle = await KafkaBroker.StartAsync(null, topics);
        Assert.StartsWith("127.0.0.1:", handle.BootstrapServers, StringComparison.Ordinal);

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = handle.BootstrapServers }).Build();
        var md = admin.GetMetadata(TimeSpan.FromSeconds(10));
        Assert.Equal(32, md.Topics.Single(t => t.Topic == "clicks.raw").Partitions.Count);
        Assert.Equal(8, md.Topics.Single(t => t.Topic == "clicks.minute").Partitions.Count);

        await handle.EnsureTopicsAsync([new TopicSpec("later", 2)]);
        Assert.Equal(2, admin.GetMetadata("later", TimeSpan.FromSeconds(10)).Topics.Single().Partitions.Count);
    }

    [Fact]
    public void Disposing_the_handle_stops_the_embedded_cluster()
    {
        var handle = KafkaBroker.Start("", [new TopicSpec("t", 1)]);
        var port = int.Parse(handle.BootstrapServers.Split(',')[0].Split(':')[1], System.Globalization.CultureInfo.InvariantCulture);
        Assert.True(CanConnect(port));

        handle.Dispose();
        handle.Dispose(); // idempotent

        Assert.False(CanConnect(port));
    }

    [Fact]
    public async Task A_topic_auto_created_before_its_declaration_with_another_partition_count_is_reported()
    {
        using var cluster = new EmbeddedKafkaCluster();
        using (var producer = new ProducerBuilder<Null, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers }).Build())
        {
            await producer.ProduceAsync("auto", new Message<Null, string> { Value = "x" });
        }

        var ex = Assert.Throws<InvalidOperationException>(() => cluster.CreateTopic(new TopicSpec("auto", 16)));
        Assert.Contains("auto-created", ex.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_fixed_port_is_served_and_advertised()
    {
        var port = FreePorts.Next();
        using var cluster = new EmbeddedKafkaCluster(new EmbeddedKafkaOptions { Port = port });
        Assert.Equal($"127.0.0.1:{port}", cluster.BootstrapServers);
        Assert.NotEqual(cluster.BootstrapServers, cluster.MockBootstrapServers);
        cluster.CreateTopic(new TopicSpec("fixed", 4));

        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = cluster.BootstrapServers }).Build();
        var brokerMd = Assert.Single(admin.GetMetadata(TimeSpan.FromSeconds(10)).Brokers);
        Assert.Equal(port, brokerMd.Port);

        using (var producer = new ProducerBuilder<string, string>(new ProducerConfig { BootstrapServers = cluster.BootstrapServers, EnableIdempotence = true }).Build())
        {
            for (var i = 0; i < 100; i++)
            {
                await producer.ProduceAsync("fixed", new Message<string, string> { Key = $"k{i}", Value = "v" });
            }
        }

        using var consumer = new ConsumerBuilder<string, string>(new ConsumerConfig
        {
            BootstrapServers = cluster.BootstrapServers,
            GroupId = "fixed-port",
            AutoOffsetReset = AutoOffsetReset.Earliest,
            SessionTimeoutMs = 6000,
        }).Build();
        consumer.Subscribe("fixed");
        var n = 0;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (n < 100 && DateTime.UtcNow < deadline)
        {
            if (consumer.Consume(TimeSpan.FromMilliseconds(500)) is not null)
            {
                n++;
            }
        }

        consumer.Close();
        Assert.Equal(100, n);
    }

    [Fact]
    public void A_fixed_port_already_in_use_fails_clearly()
    {
        using var blocker = new TcpListener(IPAddress.Loopback, 0);
        blocker.Start();
        var port = ((IPEndPoint)blocker.LocalEndpoint).Port;

        var ex = Assert.Throws<InvalidOperationException>(() => new EmbeddedKafkaCluster(new EmbeddedKafkaOptions { Port = port }));
        Assert.Contains(port.ToString(System.Globalization.CultureInfo.InvariantCulture), ex.Message, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("", 1, 1)]
    [InlineData("t", 0, 1)]
    [InlineData("t", 1, 0)]
    public void Invalid_declarations_are_rejected(string name, int partitions, short rf)
    {
        Assert.Throws<ArgumentException>(() => new TopicSpec(name, partitions, rf).Validate());
    }

    [Fact]
    public void Streamiz_internal_topic_declarations_follow_the_streamiz_naming()
    {
        var specs = StreamizInternalTopics.For("agg", ["minute-counts"], 8, repartitionNames: ["minute-counts"]);

        Assert.Equal(["agg-minute-counts-changelog", "agg-minute-counts-repartition"], specs.Select(s => s.Name));
        Assert.All(specs, s => Assert.Equal(8, s.Partitions));
        Assert.Equal("compact", specs[0].Configs[TopicSpec.ConfigKeys.CleanupPolicy]);
        Assert.Equal("delete", specs[1].Configs[TopicSpec.ConfigKeys.CleanupPolicy]);
    }

    private static bool CanConnect(int port)
    {
        try
        {
            using var c = new TcpClient();
            c.Connect(IPAddress.Loopback, port);
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
