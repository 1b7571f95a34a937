using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>
/// The process-wide producer of <see cref="ClickEvent"/>s to clicks.raw: idempotent, acks=all, placed on the
/// partition of the ad (and salt), keyed by impressionId. <see cref="ProduceAsync"/> completes only when the
/// broker has acknowledged the event. An instance starts even while the broker is unreachable: until clicks.raw's
/// partition count is known, <see cref="ProduceAsync"/> fails at once, so clicks go to the spool.
/// </summary>
public sealed class ClickEventProducer : IDisposable
{
    private static readonly TimeSpan PartitionCountRefresh = TimeSpan.FromMinutes(1);
    private static readonly TimeSpan PartitionCountRetry = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan StartMetadataTimeout = TimeSpan.FromSeconds(5);
    private readonly IProducer<string, ClickEvent> _producer;
    private readonly TimeSpan _timeout;
    private readonly string _topic;
    private readonly Timer _refresh;
    private volatile int _partitionCount;

    public ClickEventProducer(KafkaClientFactory kafka, ISerializer<ClickEvent> serializer, IOptions<IngestOptions> options,
        ILogger<ClickEventProducer> logger)
    {
        _producer = kafka.Producer<string, ClickEvent>(logger)
            .SetValueSerializer(serializer)
            .Build();
        _timeout = options.Value.ProduceTimeout;
        _topic = kafka.Names.ClicksRaw;

        // Read once here (the host builds this at start, before requests arrive) and then in the background,
        // so no request ever waits on a metadata call; an unreachable broker is asked again every few seconds.
        _refresh = new Timer(_ => RefreshPartitionCount(TimeSpan.FromSeconds(10)));
        RefreshPartitionCount(StartMetadataTimeout);
    }

    /// <summary>Sends the event and waits for the broker's acknowledgement (or throws on failure or timeout).</summary>
    public async Task<TopicPartitionOffset> ProduceAsync(ClickEvent click, CancellationToken cancellationToken)
    {
        var partitions = _partitionCount;
        if (partitions == 0)
        {
            throw new KafkaException(new Error(ErrorCode.Local_UnknownTopic,
                $"the partition count of {_topic} is not known yet: the broker has not answered since this instance started"));
        }

        var partition = ClickPartitioning.PartitionFor(click.AdId, click.Salt, partitions);
        var message = new Message<string, ClickEvent> { Key = click.ImpressionId, Value = click };
        TraceContext.Inject(message);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        var result = await _producer.ProduceAsync(new TopicPartition(_topic, partition), message, timeout.Token);
        return result.TopicPartitionOffset;
    }

    private void RefreshPartitionCount(TimeSpan timeout)
    {
        try
        {
            _partitionCount = ReadPartitionCount(timeout);
        }
        catch (KafkaException)
        {
            // Keep the last known count (none yet: clicks are spooled); the next refresh tries again.
        }

        try
        {
            _refresh.Change(_partitionCount == 0 ? PartitionCountRetry : PartitionCountRefresh, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Stopped meanwhile.
        }
    }

    private int ReadPartitionCount(TimeSpan timeout)
    {
        using var admin = new DependentAdminClientBuilder(_producer.Handle).Build();
        var topic = admin.GetMetadata(_topic, timeout).Topics.Single();
        if (topic.Error.IsError || topic.Partitions.Count == 0)
        {
            throw new KafkaException(topic.Error.IsError ? topic.Error : new Error(ErrorCode.UnknownTopicOrPart));
        }

        return topic.Partitions.Count;
    }

    public void Dispose()
    {
        _refresh.Dispose();
        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
    }
}
