using Confluent.Kafka;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Read-only questions to the broker: a group's committed offsets and how much of a topic the broker still keeps.</summary>
public sealed class BrokerProbe : IDisposable
{
    private readonly string _bootstrapServers;
    private readonly IConsumer<byte[], byte[]> _watermarks;

    public BrokerProbe(string bootstrapServers)
    {
        _bootstrapServers = bootstrapServers;
        _watermarks = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = bootstrapServers,
            GroupId = "crash-test-probe-" + Guid.NewGuid().ToString("N"),
        }).Build();
    }

    /// <summary>Sum of <paramref name="groupId"/>'s committed offsets on <paramref name="topic"/> (an OffsetFetch; the probe never joins the group).</summary>
    public long CommittedSum(string groupId, string topic, int partitions)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig
        {
            BootstrapServers = _bootstrapServers,
            GroupId = groupId,
            EnableAutoCommit = false,
        }).Build();
        var committed = TestKafka.Committed(consumer, Enumerable.Range(0, partitions).Select(p => new TopicPartition(topic, p)));
        return committed.Where(c => c.Offset.Value >= 0).Sum(c => c.Offset.Value);
    }

    /// <summary>
    /// The embedded broker keeps at most 5 MiB or 100k batches per partition, read or not (ENVIRONMENT.md). A low
    /// watermark above 0 means records were dropped, and the test's verdict would be about the broker, not the product.
    /// </summary>
    public void EnsureNothingTruncated(string topic, int partitions)
    {
        var truncated = new List<string>();
        for (var p = 0; p < partitions; p++)
        {
            var low = _watermarks.QueryWatermarkOffsets(new TopicPartition(topic, p), TimeSpan.FromSeconds(10)).Low;
            if (low.Value > 0)
            {
                truncated.Add($"partition {p} starts at offset {low.Value}");
            }
        }

        if (truncated.Count > 0)
        {
            throw new InvalidOperationException(
                $"{topic} was truncated by the embedded broker's retention (5 MiB or 100k batches per partition): " +
                $"{string.Join("; ", truncated)}. The data of this test no longer fits: produce fewer clicks or use more partitions.");
        }
    }

    public void Dispose() => _watermarks.Dispose();
}
