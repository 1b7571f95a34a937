using System.Diagnostics;
using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>
/// The process-wide producer of <see cref="ClickEvent"/>s to clicks.raw: idempotent, acks=all, placed on the
/// partition of the ad (and salt), keyed by impressionId. <see cref="ProduceAsync"/> completes only when the
/// broker has acknowledged the event.
/// </summary>
public sealed class ClickEventProducer : IDisposable
{
    private static readonly TimeSpan PartitionCountRefresh = TimeSpan.FromMinutes(1);
    private readonly IProducer<string, ClickEvent> _producer;
    private readonly TimeSpan _timeout;
    private readonly Lock _lock = new();
    private int _partitionCount;
    private long _partitionCountReadAt;

    public ClickEventProducer(IConfiguration configuration, ISerializer<ClickEvent> serializer, IOptions<IngestOptions> options)
    {
        _producer = new ProducerBuilder<string, ClickEvent>(KafkaOptions.ProducerConfig(configuration))
            .SetValueSerializer(serializer)
            .Build();
        _timeout = options.Value.ProduceTimeout;
    }

    /// <summary>Sends the event and waits for the broker's acknowledgement (or throws on failure or timeout).</summary>
    public async Task<TopicPartitionOffset> ProduceAsync(ClickEvent click, CancellationToken cancellationToken)
    {
        var partition = ClickPartitioning.PartitionFor(click.AdId, click.Salt, PartitionCount());
        var message = new Message<string, ClickEvent> { Key = click.ImpressionId, Value = click };
        TraceContext.Inject(message);
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_timeout);
        var result = await _producer.ProduceAsync(new TopicPartition(Topics.ClicksRaw, partition), message, timeout.Token);
        return result.TopicPartitionOffset;
    }

    private int PartitionCount()
    {
        var now = Stopwatch.GetTimestamp();
        if (_partitionCount > 0 && Stopwatch.GetElapsedTime(Volatile.Read(ref _partitionCountReadAt), now) < PartitionCountRefresh)
        {
            return _partitionCount;
        }

        lock (_lock)
        {
            if (_partitionCount == 0 || Stopwatch.GetElapsedTime(_partitionCountReadAt, now) >= PartitionCountRefresh)
            {
                using var admin = new DependentAdminClientBuilder(_producer.Handle).Build();
                var topic = admin.GetMetadata(Topics.ClicksRaw, TimeSpan.FromSeconds(10)).Topics.Single();
                if (topic.Error.IsError || topic.Partitions.Count == 0)
                {
                    throw new KafkaException(topic.Error.IsError ? topic.Error : new Error(ErrorCode.UnknownTopicOrPart));
                }

                _partitionCount = topic.Partitions.Count;
                Volatile.Write(ref _partitionCountReadAt, now);
            }

            return _partitionCount;
        }
    }

    public void Dispose()
    {
        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
    }
}
