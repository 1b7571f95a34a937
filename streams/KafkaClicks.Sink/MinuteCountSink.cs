using System.Diagnostics;
using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using Polly;
using Polly.Retry;

namespace KafkaClicks.Sink;

/// <summary>
/// Consumes clicks.minute and writes it to ad_clicks_minute in batches, and the aggregator's progress markers that
/// share the topic to stream_progress with them. Offsets are committed only after the database transaction committed;
/// while the database is unreachable the loop retries the same batch with backoff and consumes nothing more, so
/// nothing is lost and nothing is skipped.
/// </summary>
public sealed partial class MinuteCountSink : BackgroundService
{
    private readonly KafkaClientFactory _kafka;
    private readonly IDeserializer<MinuteCount> _deserializer;
    private readonly MinuteCountWriter _writer;
    private readonly SinkOptions _options;
    private readonly ILogger<MinuteCountSink> _logger;
    private readonly ResiliencePipeline _retry;

    public MinuteCountSink(KafkaClientFactory kafka, IDeserializer<MinuteCount> deserializer, MinuteCountWriter writer,
        IOptions<SinkOptions> options, ILogger<MinuteCountSink> logger)
    {
        _kafka = kafka;
        _deserializer = deserializer;
        _writer = writer;
        _options = options.Value;
        _logger = logger;
        _retry = new ResiliencePipelineBuilder()
            .AddRetry(new RetryStrategyOptions
            {
                ShouldHandle = new PredicateBuilder().Handle<NpgsqlException>().Handle<TimeoutException>(),
                MaxRetryAttempts = int.MaxValue,
                BackoffType = DelayBackoffType.Exponential,
                UseJitter = true,
                Delay = TimeSpan.FromMilliseconds(200),
                MaxDelay = _options.MaxRetryDelay,
                OnRetry = args =>
                {
                    SinkMetrics.Retries.Add(1);
                    if (!_databaseUnavailable)
                    {
                        _databaseUnavailable = true;
                        SinkMetrics.DatabaseUnavailable(true);
                        _unavailableSince = Stopwatch.GetTimestamp();
                        LogDatabaseUnavailable(args.Outcome.Exception?.Message ?? "");
                    }

                    LogWriteFailed(args.AttemptNumber + 1, args.Outcome.Exception?.Message ?? "", args.RetryDelay);
                    return ValueTask.CompletedTask;
                },
            })
            .Build();
    }

    /// <summary>Batches fully written and committed since start; tests and health use it.</summary>
    public long BatchesCommitted => Interlocked.Read(ref _batchesCommitted);

    private long _batchesCommitted;
    private long _unavailableSince;
    private bool _databaseUnavailable;

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => RunAsync(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private async Task RunAsync(CancellationToken stoppingToken)
    {
        using var consumer = _kafka.Consumer<string, byte[]>(_kafka.Names.Of(_options.GroupId), _logger)
            .SetKeyDeserializer(Deserializers.Utf8)
            .SetValueDeserializer(Deserializers.ByteArray)
            .Build();
        consumer.Subscribe(_kafka.Names.ClicksMinute);
        var batch = new List<MinuteCountRecord>(_options.MaxBatchRecords);
        var progress = new List<FinalProgressRecord>();
        var offsets = new Dictionary<TopicPartition, Offset>();
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                Fill(consumer, batch, progress, offsets, stoppingToken);
                if (offsets.Count == 0)
                {
                    continue;
                }

                if (batch.Count > 0 || progress.Count > 0)
                {
                    var started = Stopwatch.GetTimestamp();
                    var rows = await _retry.ExecuteAsync(async ct => await _writer.WriteAsync(batch, ct, progress), stoppingToken);
                    SinkMetrics.BatchDuration.Record(Stopwatch.GetElapsedTime(started).TotalSeconds);
                    SinkMetrics.RowsWritten.Add(rows);
                    if (_databaseUnavailable)
                    {
                        _databaseUnavailable = false;
                        SinkMetrics.DatabaseUnavailable(false);
                        var outage = Stopwatch.GetElapsedTime(_unavailableSince);
                        LogDatabaseAvailable(outage);
                    }
                }

                try
                {
                    consumer.Commit(offsets.Select(o => new TopicPartitionOffset(o.Key, o.Value + 1)));
                    Interlocked.Increment(ref _batchesCommitted);
                }
                catch (KafkaException e) when (!e.Error.IsFatal)
                {
                    // The group moved on while the batch was written (a rebalance, or an eviction after a long database
                    // outage). The rows are stored; whoever owns the partitions now re-reads them from the last commit,
                    // and writing absolute counts again changes nothing.
                    LogCommitFailed(e.Error.Code, e.Error.Reason);
                }

                SinkMetrics.BatchRecords.Add(batch.Count);
                SinkMetrics.ConsumerLag(Lag(consumer));
                batch.Clear();
                progress.Clear();
                offsets.Clear();
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (KafkaException e) when (e.Error.IsFatal)
        {
            // The consumer can do nothing more (librdkafka says so): the role stops, and with it the process, so its
            // supervisor starts a new one instead of this loop failing forever.
            LogFatal(e.Error.Code, e.Error.Reason);
            throw;
        }
        finally
        {
            if (_databaseUnavailable)
            {
                _databaseUnavailable = false;
                SinkMetrics.DatabaseUnavailable(false);
            }

            consumer.Close();
        }
    }

    private void Fill(IConsumer<string, byte[]> consumer, List<MinuteCountRecord> batch, List<FinalProgressRecord> progress,
        Dictionary<TopicPartition, Offset> offsets, CancellationToken stoppingToken)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(_options.MaxBatchDelay.TotalSeconds * Stopwatch.Frequency);
        while (batch.Count < _options.MaxBatchRecords && !stoppingToken.IsCancellationRequested)
        {
            var remaining = TimeSpan.FromSeconds((double)(deadline - Stopwatch.GetTimestamp()) / Stopwatch.Frequency);
            if (remaining <= TimeSpan.Zero)
            {
                return;
            }

            ConsumeResult<string, byte[]>? result;
            try
            {
                result = consumer.Consume(remaining);
            }
            catch (ConsumeException e) when (!e.Error.IsFatal)
            {
                // Most often max.poll.interval.ms passed while a write was being retried: the consumer has left the
                // group and rejoins on the next call. What the batch already holds is still written.
                LogConsumeFailed(e.Error.Code, e.Error.Reason);
                return;
            }

            if (result is null)
            {
                return;
            }

            offsets[result.TopicPartition] = result.Offset;
            try
            {
                if (ContractCodecs.FinalProgress.Reads(result.Message.Value))
                {
                    progress.Add(new FinalProgressRecord(ContractCodecs.FinalProgress.Deserialize(result.Message.Value), result.Partition.Value));
                    continue;
                }

                var count = _deserializer.Deserialize(result.Message.Value, result.Message.Value is null,
                    new SerializationContext(MessageComponentType.Value, result.Topic, result.Message.Headers));
                if (MinuteCountRules.Violation(count, DateTime.UtcNow) is { } violation)
                {
                    SinkMetrics.Poison(violation.ToString());
                    LogInvalidRecord(result.TopicPartitionOffset.ToString(), violation.ToString(), count.AdId, count.Salt, count.WindowStart, count.Clicks);
                    continue;
                }

                batch.Add(new MinuteCountRecord(count, result.Partition.Value));
            }
            catch (AvroContractException e)
            {
                SinkMetrics.Poison(e.Reason.ToString());
                LogPoisonRecord(result.TopicPartitionOffset.ToString(), e.Reason.ToString(), e.Message);
            }
        }
    }

    /// <summary>End offsets minus positions over the assigned partitions, from the consumer's cached watermarks (no request).</summary>
    private static long Lag(IConsumer<string, byte[]> consumer)
    {
        long lag = 0;
        foreach (var partition in consumer.Assignment)
        {
            var high = consumer.GetWatermarkOffsets(partition).High;
            var position = consumer.Position(partition);
            if (high.Value >= 0 && position.Value >= 0)
            {
                lag += Math.Max(0, high.Value - position.Value);
            }
        }

        return lag;
    }

    [LoggerMessage(EventId = 4001, Level = LogLevel.Warning, Message = "Writing minute counts failed (attempt {Attempt}): {Error}; retrying in {Delay}")]
    private partial void LogWriteFailed(int attempt, string error, TimeSpan delay);

    [LoggerMessage(EventId = 4003, Level = LogLevel.Error, Message = "Database unreachable ({Error}): the sink stopped consuming and commits no offsets until a write succeeds")]
    private partial void LogDatabaseUnavailable(string error);

    [LoggerMessage(EventId = 4004, Level = LogLevel.Information, Message = "Database reachable again after {Outage}; the sink resumes consuming")]
    private partial void LogDatabaseAvailable(TimeSpan outage);

    [LoggerMessage(EventId = 4006, Level = LogLevel.Warning, Message = "Offsets not committed ({Code}: {Reason}); the stored batch is re-read and rewritten unchanged by the partitions' owner")]
    private partial void LogCommitFailed(ErrorCode code, string reason);

    [LoggerMessage(EventId = 4008, Level = LogLevel.Critical, Message = "Consuming clicks.minute failed fatally ({Code}: {Reason}); the sink stops")]
    private partial void LogFatal(ErrorCode code, string reason);

    [LoggerMessage(EventId = 4007, Level = LogLevel.Warning, Message = "Consuming clicks.minute failed ({Code}: {Reason}); the sink rejoins its group and goes on")]
    private partial void LogConsumeFailed(ErrorCode code, string reason);

    [LoggerMessage(EventId = 4002, Level = LogLevel.Error, Message = "Skipped undecodable record at {Position} ({Reason}): {Error}")]
    private partial void LogPoisonRecord(string position, string reason, string error);

    [LoggerMessage(EventId = 4005, Level = LogLevel.Error, Message = "Skipped invalid minute count at {Position} ({Reason}): ad {AdId}, salt {Salt}, window {WindowStart:O}, {Clicks} clicks")]
    private partial void LogInvalidRecord(string position, string reason, long adId, int salt, DateTime windowStart, long clicks);
}
