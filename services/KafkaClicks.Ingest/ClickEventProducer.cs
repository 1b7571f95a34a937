using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>
/// The process-wide producer of <see cref="ClickEvent"/>s to clicks.raw: idempotent, acks=all, placed on the
/// partition of the ad (and salt), keyed by impressionId. <see cref="ProduceAsync"/> completes only when the
/// broker has acknowledged the event. Clicks are placed by the partition count the deployment records
/// (<see cref="KafkaOptions.ClicksRawPartitions"/>, see <see cref="ClicksRawPartitionCount"/>), and produced only while
/// clicks.raw has exactly that many partitions: until its count is known (an instance started while the broker is
/// unreachable) and while it differs (partitions were added), <see cref="ProduceAsync"/> fails at once, so clicks go to
/// the spool and wait there.
/// </summary>
public sealed partial class ClickEventProducer : IDisposable, IHealthCheck
{
    private static readonly TimeSpan PartitionCountRefresh = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan PartitionCountRetry = TimeSpan.FromSeconds(2);
    private static readonly TimeSpan StartMetadataTimeout = TimeSpan.FromSeconds(5);
    private readonly IProducer<string, ClickEvent> _producer;
    private readonly TimeSpan _timeout;
    private readonly string _topic;
    private readonly int _recordedPartitions;
    private readonly ILogger<ClickEventProducer> _logger;
    private readonly Timer _refresh;
    private volatile int _topicPartitions;

    public ClickEventProducer(KafkaClientFactory kafka, ISerializer<ClickEvent> serializer, IOptions<IngestOptions> options,
        IOptions<KafkaOptions> kafkaOptions, ILogger<ClickEventProducer> logger)
    {
        _producer = kafka.Producer<string, ClickEvent>(logger)
            .SetValueSerializer(serializer)
            .Build();
        _timeout = options.Value.ProduceTimeout;
        _topic = kafka.Names.ClicksRaw;
        _recordedPartitions = kafkaOptions.Value.ClicksRawPartitions;
        _logger = logger;

        // Read once here (the host builds this at start, before requests arrive) and then in the background,
        // so no request ever waits on a metadata call; an unreachable broker is asked again every few seconds.
        _refresh = new Timer(_ => RefreshPartitionCount(TimeSpan.FromSeconds(10)));
        RefreshPartitionCount(StartMetadataTimeout);
        IngestTelemetry.Watch(this);
    }

    /// <summary>Why clicks are not produced now although the broker answers (clicks.raw's partition count differs from the recorded one), or null.</summary>
    public string? Refusal
    {
        get
        {
            var partitions = _topicPartitions;
            return partitions == 0 || partitions == _recordedPartitions ? null : ClicksRawPartitionCount.Mismatch(_topic, partitions, _recordedPartitions);
        }
    }

    /// <summary>
    /// Degraded while <see cref="Refusal"/> holds: the instance still answers every click (from the spool), so it stays in
    /// the load balancer, but its clicks are not counted until the partition counts agree.
    /// </summary>
    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(Refusal is { } refusal ? HealthCheckResult.Degraded(refusal) : HealthCheckResult.Healthy());

    /// <summary>Sends the event and waits for the broker's acknowledgement (or throws on failure or timeout).</summary>
    public async Task<TopicPartitionOffset> ProduceAsync(ClickEvent click, CancellationToken cancellationToken)
    {
        var partitions = _topicPartitions;
        if (partitions == 0)
        {
            throw new KafkaException(new Error(ErrorCode.Local_UnknownTopic,
                $"the partition count of {_topic} is not known yet: the broker has not answered since this instance started"));
        }

        if (partitions != _recordedPartitions)
        {
            throw new KafkaException(new Error(ErrorCode.Local_State, ClicksRawPartitionCount.Mismatch(_topic, partitions, _recordedPartitions)));
        }

        var partition = ClickPartitioning.PartitionFor(click.AdId, click.Salt, _recordedPartitions);
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
            var before = _topicPartitions;
            using var admin = new DependentAdminClientBuilder(_producer.Handle).Build();
            var now = admin.PartitionCount(_topic, timeout);
            _topicPartitions = now;
            if (now != before && now != _recordedPartitions)
            {
                LogPartitionCountRefused(ClicksRawPartitionCount.Mismatch(_topic, now, _recordedPartitions));
            }
            else if (now != before && before != 0 && now == _recordedPartitions)
            {
                LogPartitionCountAccepted(_topic, now);
            }
        }
        catch (KafkaException)
        {
            // Keep the last known count (none yet: clicks are spooled); the next refresh tries again.
        }
        catch (ObjectDisposedException)
        {
            // Stopped meanwhile: thrown from the timer's callback, it would end the process.
            return;
        }

        try
        {
            _refresh.Change(_topicPartitions == 0 ? PartitionCountRetry : PartitionCountRefresh, Timeout.InfiniteTimeSpan);
        }
        catch (ObjectDisposedException)
        {
            // Stopped meanwhile.
        }
    }

    public void Dispose()
    {
        IngestTelemetry.Unwatch(this);

        // A refresh the timer is running uses the producer's handle: it ends before the producer does.
        _refresh.DisposeAndWait(TimeSpan.FromSeconds(15));

        _producer.Flush(TimeSpan.FromSeconds(10));
        _producer.Dispose();
    }

    [LoggerMessage(EventId = 2004, Level = LogLevel.Error, Message = "Clicks are spooled, not produced: {Reason}")]
    private partial void LogPartitionCountRefused(string reason);

    [LoggerMessage(EventId = 2005, Level = LogLevel.Information, Message = "{Topic} has the recorded {Partitions} partitions again: clicks are produced (and the spool forwarded)")]
    private partial void LogPartitionCountAccepted(string topic, int partitions);
}
