using Confluent.Kafka;
using KafkaClicks.Broker;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// Clicks written straight to clicks.raw (or a topic like it) as the ingest role writes them: key impressionId, Avro
/// value, partition by ad and salt. The one ClickEvent producer of the tests that start behind ingest.
/// </summary>
public static class RawClicks
{
    /// <summary>A click of <paramref name="adId"/> at <paramref name="at"/>, a fresh impression unless one is given.</summary>
    /// <param name="padding">Goes into <c>IngestInstance</c>, to make records larger.</param>
    public static ClickEvent Click(long adId, DateTime at, int salt = 0, string? impression = null, string padding = "") => new()
    {
        ImpressionId = impression ?? Guid.NewGuid().ToString("N"),
        AdId = adId,
        AdvertiserId = 1,
        Salt = salt,
        ClickedAt = at,
        ImpressionAt = at.AddSeconds(-3),
        IngestInstance = padding,
    };

    /// <summary>An idempotent acks=all producer of clicks, batching (lz4 unless <paramref name="compress"/> is false) with room for large bursts.</summary>
    public static IProducer<string, ClickEvent> Producer(string bootstrapServers, bool compress = true) =>
        new ProducerBuilder<string, ClickEvent>(new ProducerConfig
            {
                BootstrapServers = bootstrapServers,
                EnableIdempotence = true,
                Acks = Acks.All,
                LingerMs = 20,
                BatchNumMessages = 10_000,
                CompressionType = compress ? CompressionType.Lz4 : CompressionType.None,
                QueueBufferingMaxMessages = 500_000,
            })
            .SetValueSerializer(new AvroKafkaSerializer<ClickEvent>(ContractCodecs.ClickEvent))
            .Build();

    /// <summary>Writes <paramref name="clicks"/> to the broker's clicks.raw, which has <paramref name="partitions"/> partitions.</summary>
    /// <param name="writtenAt">The records' timestamp (when they reached the log); by default the click's own time.</param>
    public static void Produce(BrokerHandle broker, int partitions, IEnumerable<ClickEvent> clicks, bool compress = true, DateTime? writtenAt = null) =>
        Produce(broker.BootstrapServers, broker.Names.ClicksRaw, partitions, clicks, compress, writtenAt);

    /// <summary>
    /// Writes <paramref name="clicks"/> to <paramref name="topic"/> (of <paramref name="partitions"/> partitions; 1 puts
    /// every click on partition 0) and returns once every one is acknowledged; throws if any was not.
    /// </summary>
    /// <param name="writtenAt">The records' timestamp (when they reached the log); by default the click's own time.</param>
    public static void Produce(string bootstrapServers, string topic, int partitions, IEnumerable<ClickEvent> clicks, bool compress = true,
        DateTime? writtenAt = null)
    {
        using var producer = Producer(bootstrapServers, compress);
        var failed = 0;
        string? firstFailure = null;
        foreach (var click in clicks)
        {
            var partition = ClickPartitioning.PartitionFor(click.AdId, click.Salt, partitions);
            producer.Produce(new TopicPartition(topic, partition), new Message<string, ClickEvent>
            {
                Key = click.ImpressionId,
                Value = click,
                Timestamp = new Timestamp(writtenAt ?? click.ClickedAt),
            }, report =>
            {
                if (report.Error.IsError && Interlocked.Increment(ref failed) == 1)
                {
                    firstFailure = $"{report.TopicPartition}: {report.Error.Code} ({report.Error.Reason})";
                }
            });
        }

        if (producer.Flush(TimeSpan.FromSeconds(30)) != 0 || Volatile.Read(ref failed) > 0)
        {
            throw new InvalidOperationException($"not every click reached {topic}: {failed} failed, first {firstFailure ?? "(none; still in flight after 30 s)"}");
        }
    }

    /// <summary>A broker with every topic of the product, clicks.raw with <paramref name="partitions"/> partitions.</summary>
    public static async Task<BrokerHandle> BrokerAsync(int partitions = 4) =>
        await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(new Dictionary<string, string?>(TestKafka.ForTest().Settings())
        {
            ["Kafka:ClicksRawPartitions"] = partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
        }), Role.Reconciler);

    /// <summary>The recount of the broker's clicks.raw.</summary>
    public static RawLogCounter Counter(BrokerHandle broker, TimeSpan lateness, int? readers = null, int? impressionsInMemory = null) =>
        new(KafkaClientFactory.For(broker.BootstrapServers), lateness, readers, topic: broker.Names.ClicksRaw, impressionsInMemory: impressionsInMemory);
}
