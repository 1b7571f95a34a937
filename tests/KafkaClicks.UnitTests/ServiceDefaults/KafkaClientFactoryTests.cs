using Confluent.Kafka;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;

namespace KafkaClicks.UnitTests.ServiceDefaults;

public class KafkaClientFactoryTests
{
    private static KafkaClientFactory Factory(params (string Key, string Value)[] settings) =>
        new(new ConfigurationBuilder()
            .AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))
                .Append(new("Kafka:BootstrapServers", "broker-1:9093,broker-2:9093")))
            .Build());

    public static TheoryData<string, string, string, string, string> Spellings => new()
    {
        // librdkafka's own names and values, and Confluent's config class properties, as configuration binds them.
        { "security.protocol", "SASL_SSL", "sasl.mechanism", "SCRAM-SHA-512", "ssl.ca.location" },
        { "SecurityProtocol", "SaslSsl", "SaslMechanism", "ScramSha512", "SslCaLocation" },
    };

    [Theory]
    [MemberData(nameof(Spellings))]
    public void A_secured_clusters_client_settings_reach_every_kind_of_client(string protocolKey, string protocol, string mechanismKey, string mechanism,
        string caKey)
    {
        var kafka = Factory(
            ($"Kafka:Client:{protocolKey}", protocol),
            ($"Kafka:Client:{mechanismKey}", mechanism),
            ("Kafka:Client:sasl.username", "kafkaclicks"),
            ($"Kafka:Client:{caKey}", "/etc/kafka/ca.pem"));

        ClientConfig[] configs = [kafka.ProducerConfig(), kafka.ConsumerConfig("group"), kafka.AdminConfig(), kafka.ClientSettings()];

        foreach (var config in configs)
        {
            Assert.Equal("sasl_ssl", config.Get("security.protocol"), ignoreCase: true);
            Assert.Equal("SCRAM-SHA-512", config.Get("sasl.mechanism"));
            Assert.Equal("kafkaclicks", config.Get("sasl.username"));
            Assert.Equal("/etc/kafka/ca.pem", config.Get("ssl.ca.location"));
        }

        Assert.All(configs[..3], c => Assert.Equal("broker-1:9093,broker-2:9093", c.Get("bootstrap.servers")));
    }

    [Fact]
    public void Producer_and_consumer_settings_reach_only_their_kind_over_the_client_settings()
    {
        var kafka = Factory(
            ("Kafka:Client:client.id", "kafkaclicks"),
            ("Kafka:Client:LingerMs", "50"),
            ("Kafka:Producer:linger.ms", "20"),
            ("Kafka:Producer:CompressionType", "Zstd"),
            ("Kafka:Consumer:fetch.min.bytes", "1024"),
            ("Kafka:Consumer:SessionTimeoutMs", "45000"));

        var producer = kafka.ProducerConfig();
        var consumer = kafka.ConsumerConfig("group");

        Assert.Equal(("kafkaclicks", "kafkaclicks"), (producer.ClientId, consumer.ClientId));
        Assert.Equal((20, CompressionType.Zstd), (producer.LingerMs, producer.CompressionType));
        Assert.Null(producer.Get("fetch.min.bytes"));
        Assert.Equal((1024, 45_000), (consumer.FetchMinBytes, consumer.SessionTimeoutMs));
        Assert.Null(consumer.Get("compression.type"));
    }

    [Fact]
    public void A_consumer_waits_at_most_100_ms_for_records_unless_configured_otherwise()
    {
        Assert.Equal(100, Factory().ConsumerConfig("group").FetchWaitMaxMs);
        Assert.Equal(500, Factory(("Kafka:Consumer:fetch.wait.max.ms", "500")).ConsumerConfig("group").FetchWaitMaxMs);
    }

    [Fact]
    public void What_a_client_needs_to_be_correct_wins_over_any_setting()
    {
        var kafka = Factory(
            ("Kafka:Client:bootstrap.servers", "elsewhere:9092"),
            ("Kafka:Producer:acks", "1"),
            ("Kafka:Consumer:group.id", "shared"),
            ("Kafka:Consumer:EnableAutoCommit", "true"),
            ("Kafka:Consumer:isolation.level", "read_uncommitted"),
            ("Kafka:Consumer:auto.offset.reset", "latest"));

        var producer = kafka.ProducerConfig();
        var consumer = kafka.ConsumerConfig("kafkaclicks-sink", c => c.EnablePartitionEof = true);

        Assert.Equal(("broker-1:9093,broker-2:9093", Acks.All), (producer.BootstrapServers, producer.Acks));
        Assert.Equal("broker-1:9093,broker-2:9093", consumer.BootstrapServers);
        Assert.Equal(("kafkaclicks-sink", false), (consumer.GroupId, consumer.EnableAutoCommit));
        Assert.Equal((IsolationLevel.ReadCommitted, AutoOffsetReset.Earliest), (consumer.IsolationLevel, consumer.AutoOffsetReset));
        Assert.True(consumer.EnablePartitionEof);
    }

    [Fact]
    public void Settings_put_over_another_librarys_config_leave_what_it_decides()
    {
        var kafka = Factory(("Kafka:Client:sasl.username", "kafkaclicks"), ("Kafka:Consumer:group.id", "shared"), ("Kafka:Consumer:MaxPollIntervalMs", "600000"));
        var streamiz = new ConsumerConfig { GroupId = "kafkaclicks-aggregator", ClientId = "aggregator-StreamThread-0" };

        kafka.Overlay(streamiz, "Consumer", new HashSet<string> { "group.id", "client.id" });

        Assert.Equal(("kafkaclicks-aggregator", "aggregator-StreamThread-0"), (streamiz.GroupId, streamiz.ClientId));
        Assert.Equal(("kafkaclicks", 600_000), (streamiz.SaslUsername, streamiz.MaxPollIntervalMs));
    }

    [Fact]
    public void No_bootstrap_servers_is_refused_naming_the_key()
    {
        var kafka = new KafkaClientFactory(new ConfigurationBuilder().Build());

        var error = Assert.Throws<KafkaClicksConfigurationException>(() => kafka.ConsumerConfig("group"));
        Assert.StartsWith("Kafka:BootstrapServers is not set", error.Message, StringComparison.Ordinal);
    }
}
