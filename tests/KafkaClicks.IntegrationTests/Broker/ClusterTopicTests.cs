using System.Globalization;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaClicks.Broker;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using static KafkaClicks.IntegrationTests.Infrastructure.RawClicks;

namespace KafkaClicks.IntegrationTests.Broker;

/// <summary>
/// What only a real Kafka cluster can show (the cluster lane): the topics the product's provisioner creates carry the
/// catalog's configs, as the broker itself reports them (DescribeConfigs), and the raw click log keeps every click for
/// recounts whatever the broker's log cleaner does.
/// </summary>
[Trait("Lane", "cluster")]
public sealed class ClusterTopicTests
{
    private static readonly DateTime T0 = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour).AddHours(-2);

    [Fact]
    public async Task Topics_are_created_with_the_catalogs_partitions_replication_and_configs()
    {
        var settings = Settings(TestKafka.ForTest());
        settings["Kafka:RawRetention"] = "3.00:00:00";
        await using var broker = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(settings), Role.All);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
        var changelog = $"{broker.Names.Of("kafkaclicks-aggregator")}-impressions-changelog";
        var expected = new Dictionary<string, int>
        {
            [broker.Names.ClicksRaw] = 6,
            [broker.Names.ClicksMinute] = 3,
            [broker.Names.ClicksLate] = 2,
            [changelog] = 6,
        };

        var metadata = admin.GetMetadata(TimeSpan.FromSeconds(10));
        foreach (var (topic, partitions) in expected)
        {
            var described = metadata.Topics.Single(t => t.Topic == topic);
            Assert.Equal(partitions, described.Partitions.Count);
            Assert.All(described.Partitions, p => Assert.Equal(TestKafka.ReplicationFactor, p.Replicas.Length));
        }

        var configs = (await admin.DescribeConfigsAsync(expected.Keys.Select(t => new ConfigResource { Type = ResourceType.Topic, Name = t })))
            .ToDictionary(r => r.ConfigResource.Name, r => r.Entries);
        string Config(string topic, string key) => configs[topic][key].Value;

        Assert.Equal("delete", Config(broker.Names.ClicksRaw, "cleanup.policy"));
        Assert.Equal(TimeSpan.FromDays(3).TotalMilliseconds.ToString(CultureInfo.InvariantCulture), Config(broker.Names.ClicksRaw, "retention.ms"));
        Assert.Equal("compact,delete", Config(changelog, "cleanup.policy"));
        var minInSync = Math.Min(2, (int)TestKafka.ReplicationFactor).ToString(CultureInfo.InvariantCulture);
        Assert.All(expected.Keys, topic => Assert.Equal(minInSync, Config(topic, "min.insync.replicas")));

        // Starting again (another instance, a restart) accepts the topics as they are.
        await using var again = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(settings), Role.All);
    }

    /// <summary>
    /// An existing deployment's impression store changelog keeps what the store kept then (32.5 minutes before
    /// Impressions:Lifetime): a task restoring from it would lose the impressions older than that and count their repeats
    /// again. Starting raises a retention shorter than declared, and never lowers a longer one an operator set.
    /// </summary>
    [Fact]
    [Trait("Category", "Billing")]
    public async Task Starting_raises_a_retention_shorter_than_declared_and_keeps_a_longer_one()
    {
        var kafka = TestKafka.ForTest();
        var settings = Settings(kafka);
        await using (await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(settings), Role.All))
        {
        }

        var changelog = $"{kafka.Names.Of("kafkaclicks-aggregator")}-impressions-changelog";
        var raw = kafka.Names.ClicksRaw;
        var operatorsRawRetention = TimeSpan.FromDays(30).TotalMilliseconds.ToString(CultureInfo.InvariantCulture);
        using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = settings["Kafka:BootstrapServers"] }).Build();
        await admin.IncrementalAlterConfigsAsync(new Dictionary<ConfigResource, List<ConfigEntry>>
        {
            [new ConfigResource { Type = ResourceType.Topic, Name = changelog }] =
                [new ConfigEntry { Name = "retention.ms", Value = "1950000", IncrementalOperation = AlterConfigOpType.Set }],
            [new ConfigResource { Type = ResourceType.Topic, Name = raw }] =
                [new ConfigEntry { Name = "retention.ms", Value = operatorsRawRetention, IncrementalOperation = AlterConfigOpType.Set }],
        });

        settings["Impressions:Lifetime"] = "06:00:00";
        var configuration = KafkaClicksHost.LoadConfiguration(settings);
        await using (await KafkaClicksHost.StartBrokerAsync(configuration, Role.All))
        {
        }

        var configs = (await admin.DescribeConfigsAsync([
                new ConfigResource { Type = ResourceType.Topic, Name = changelog },
                new ConfigResource { Type = ResourceType.Topic, Name = raw }]))
            .ToDictionary(r => r.ConfigResource.Name, r => r.Entries["retention.ms"].Value);
        var declared = KafkaClicks.Aggregator.AggregatorTopics.Internal(configuration, 6).Single().Configs["retention.ms"];
        Assert.Equal(TimeSpan.FromHours(6) + TimeSpan.FromMinutes(42.5), TimeSpan.FromMilliseconds(long.Parse(declared, CultureInfo.InvariantCulture)));
        Assert.Equal(declared, configs[changelog]);
        Assert.Equal(operatorsRawRetention, configs[raw]);
    }

    /// <summary>
    /// The stream counts an impression at its first click. A compacted clicks.raw would keep only the last one, so a recount
    /// after the cleaner ran would move the impression to the minute of its repeat. A control topic with the same records
    /// and cleanup.policy=compact shows that the cleaner did run meanwhile.
    /// </summary>
    [Fact]
    public async Task A_recount_gives_the_same_counts_before_and_after_the_log_cleaner_ran()
    {
        var settings = Settings(TestKafka.ForTest());
        await using var broker = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(settings), Role.Reconciler);
        var control = broker.Names.Of("compacted-control");
        await broker.EnsureTopicsAsync([new TopicSpec(control, 1, TestKafka.ReplicationFactor,
            new Dictionary<string, string> { [TopicSpec.ConfigKeys.CleanupPolicy] = "compact" })]);

        // Small segments, as a busy topic has, so the cleaner may work on everything but the newest records.
        using (var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            await admin.IncrementalAlterConfigsAsync(new[] { broker.Names.ClicksRaw, control }.ToDictionary(
                t => new ConfigResource { Type = ResourceType.Topic, Name = t },
                _ => (List<ConfigEntry>)[new ConfigEntry { Name = "segment.ms", Value = "1000", IncrementalOperation = AlterConfigOpType.Set }]));
        }

        var repeated = Guid.NewGuid().ToString("N");
        var clicks = Enumerable.Range(0, 20).Select(i => Click(1 + (i % 3), T0.AddSeconds(5 + i)))
            .Append(Click(7, T0.AddSeconds(30), impression: repeated))
            .Append(Click(7, T0.AddMinutes(2).AddSeconds(30), impression: repeated))
            .ToList();
        // Uncompressed, every click on partition 0 of both topics (the control topic has one partition).
        Produce(broker.BootstrapServers, broker.Names.ClicksRaw, 1, clicks, compress: false);
        Produce(broker.BootstrapServers, control, 1, clicks, compress: false);

        var counter = new RawLogCounter(KafkaClientFactory.For(broker.BootstrapServers), TimeSpan.FromMinutes(5), topic: broker.Names.ClicksRaw);
        var before = counter.Count(T0, T0.AddMinutes(10), null, null, default).Windows;
        Assert.Equal(1, before[(7, T0, 0)]);
        Assert.False(before.ContainsKey((7, T0.AddMinutes(2), 0)));

        // Later records roll the segments holding the scenario's; then wait for the cleaner to compact the control topic.
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (KeyCount(broker.BootstrapServers, control, repeated) > 1)
        {
            Assert.True(DateTime.UtcNow < deadline, "the broker's log cleaner did not compact the control topic within 90 s");
            await Task.Delay(2000);
            var filler = Click(9, T0.AddMinutes(30));
            Produce(broker.BootstrapServers, broker.Names.ClicksRaw, 1, [filler], compress: false);
            Produce(broker.BootstrapServers, control, 1, [filler], compress: false);
        }

        Assert.Equal(before, counter.Count(T0, T0.AddMinutes(10), null, null, default).Windows);
        Assert.Equal(2, KeyCount(broker.BootstrapServers, broker.Names.ClicksRaw, repeated));
    }

    private static Dictionary<string, string?> Settings(TestKafka kafka)
    {
        if (!TestKafka.OnCluster)
        {
            throw new InvalidOperationException("These tests need a Kafka cluster: KAFKACLICKS_TEST_KAFKA (infra/dev.sh test cluster sets it).");
        }

        var settings = kafka.Settings();
        settings["Kafka:ClicksRawPartitions"] = "6";
        settings["Kafka:ClicksMinutePartitions"] = "3";
        settings["Kafka:ClicksLatePartitions"] = "2";
        return settings;
    }

    private static int KeyCount(string bootstrapServers, string topic, string key) =>
        TopicReader.ReadClicks(bootstrapServers, topic).Count(r => r.Message.Key == key);
}
