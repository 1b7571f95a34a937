using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Reconciler;

/// <summary>
/// Part of the reconciler role: follows clicks.late (clicks the aggregator received after their window's grace) and
/// recounts the hours of those that reached clicks.raw too late for their hour's scheduled run to read them, that
/// is more than <see cref="ReconcilerOptions.Lateness"/> after the hour, as after a long broker outage drained from
/// the ingest spool. Such a recount, like every run, reads the log to its end. Offsets on clicks.late are
/// committed only after the recounts they asked for succeeded, so a crash or a failed run recounts again.
/// </summary>
public sealed partial class LateClickReconciler : BackgroundService
{
    /// <summary>The consumer group on clicks.late.</summary>
    public const string GroupId = ConsumerGroups.LateClicks;

    private readonly KafkaClientFactory _kafka;
    private readonly ReconciliationScheduler _scheduler;
    private readonly ReconcilerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<LateClickReconciler> _logger;

    public LateClickReconciler(KafkaClientFactory kafka, ReconciliationScheduler scheduler, IOptions<ReconcilerOptions> options,
        TimeProvider time, ILogger<LateClickReconciler> logger)
    {
        _kafka = kafka;
        _scheduler = scheduler;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>The hour a late click was made in, if its scheduled run could not read it: else null.</summary>
    public static DateTime? HourToRecount(DateTime clickedAt, DateTime writtenAt, TimeSpan lateness)
    {
        var hour = TimeBuckets.HourOf(clickedAt);
        return writtenAt > hour + TimeBuckets.Hour + lateness ? hour : null;
    }

    protected override Task ExecuteAsync(CancellationToken stoppingToken) =>
        Task.Factory.StartNew(() => Run(stoppingToken), stoppingToken, TaskCreationOptions.LongRunning, TaskScheduler.Default).Unwrap();

    private async Task Run(CancellationToken stoppingToken)
    {
        using var consumer = _kafka.Consumer<string, ClickEvent>(_kafka.Names.Of(GroupId), _logger, config =>
            {
                config.EnableAutoOffsetStore = true; // offsets are committed explicitly, after the recounts
                config.MaxPollIntervalMs = (int)TimeSpan.FromMinutes(30).TotalMilliseconds; // a recount can take minutes
            })
            .SetValueDeserializer(new AvroKafkaDeserializer<ClickEvent>(ContractCodecs.ClickEvent))
            .Build();
        consumer.Subscribe(_kafka.Names.ClicksLate);
        var pending = new Dictionary<DateTime, DateTime>(); // hour -> newest write time of its late clicks
        var uncommitted = false;
        DateTime? dueAt = null;
        try
        {
            while (!stoppingToken.IsCancellationRequested)
            {
                ConsumeOne(consumer, pending, ref uncommitted, ref dueAt);
                if (dueAt is { } due && _time.GetUtcNow().UtcDateTime >= due)
                {
                    dueAt = await RecountAsync(pending, stoppingToken) ? null : _time.GetUtcNow().UtcDateTime + _options.LateClickDelay;
                }

                if (uncommitted && pending.Count == 0)
                {
                    try
                    {
                        consumer.Commit();
                        uncommitted = false;
                    }
                    catch (KafkaException e) when (!e.Error.IsFatal)
                    {
                        // The broker is away: the next pass commits (recounting again after a crash is harmless).
                        LogCommitFailed(e.Message);
                    }
                }
            }
        }
        catch (OperationCanceledException) when (stoppingToken.IsCancellationRequested)
        {
        }
        catch (KafkaException e) when (e.Error.IsFatal)
        {
            // The consumer can do nothing more (librdkafka says so): the role stops, and with it the process, so its
            // supervisor starts a new one instead of this loop retrying forever.
            LogFatal(e.Error.Code, e.Error.Reason);
            throw;
        }
        finally
        {
            consumer.Close();
        }
    }

    private void ConsumeOne(IConsumer<string, ClickEvent> consumer, Dictionary<DateTime, DateTime> pending, ref bool uncommitted, ref DateTime? dueAt)
    {
        ConsumeResult<string, ClickEvent>? result;
        try
        {
            result = consumer.Consume(TimeSpan.FromMilliseconds(500));
        }
        catch (ConsumeException e) when (e.Error.Code is ErrorCode.Local_ValueDeserialization or ErrorCode.Local_KeyDeserialization)
        {
            // Not a click: nothing to recount. Its offset is stored with the next one.
            LogUndecodable(e.ConsumerRecord?.TopicPartitionOffset, e.Message);
            return;
        }
        catch (ConsumeException e) when (!e.Error.IsFatal)
        {
            LogConsumeFailed(e.Message);
            Thread.Sleep(TimeSpan.FromSeconds(1));
            return;
        }

        if (result?.Message?.Value is not { } click)
        {
            return;
        }

        uncommitted = true;
        var writtenAt = result.Message.Timestamp.UtcDateTime;
        if (HourToRecount(DateTime.SpecifyKind(click.ClickedAt, DateTimeKind.Utc), writtenAt, _options.Lateness) is { } hour)
        {
            pending[hour] = pending.TryGetValue(hour, out var newest) && newest > writtenAt ? newest : writtenAt;
            dueAt ??= _time.GetUtcNow().UtcDateTime + _options.LateClickDelay;
        }
    }

    /// <summary>
    /// Recounts every pending hour; true when all succeeded (they are then forgotten). An hour not final yet (the stream
    /// still lags behind it) fails like a database outage, and is recounted after LateClickDelay.
    /// </summary>
    private async Task<bool> RecountAsync(Dictionary<DateTime, DateTime> pending, CancellationToken cancellationToken)
    {
        foreach (var (hour, newest) in pending.OrderBy(p => p.Key).ToList())
        {
            try
            {
                LogRecounting(hour, newest);
                await _scheduler.RunAsync(hour, hour + TimeBuckets.Hour, cancellationToken);
                pending.Remove(hour);
            }
            catch (RangeBeyondMinuteRetentionException e)
            {
                // Its minutes are gone or going: never correctable, so forgotten rather than retried for good.
                LogBeyondRetention(hour, e.KeptFrom);
                pending.Remove(hour);
            }
            catch (Exception e) when (e is NpgsqlException or KafkaException or TimeoutException or RangeNotFinalException && !cancellationToken.IsCancellationRequested)
            {
                LogFailed(hour, e.Message);
                return false;
            }
        }

        return true;
    }

    [LoggerMessage(EventId = 5101, Level = LogLevel.Information, Message = "Recounting {Hour:o}: late clicks reached the log until {Newest:o}, after its scheduled run")]
    private partial void LogRecounting(DateTime hour, DateTime newest);

    [LoggerMessage(EventId = 5102, Level = LogLevel.Error, Message = "Recounting {Hour:o} for late clicks failed: {Error}; retrying")]
    private partial void LogFailed(DateTime hour, string error);

    [LoggerMessage(EventId = 5107, Level = LogLevel.Warning, Message = "Late clicks of {Hour:o} are not recounted: minutes are kept only from {KeptFrom:o} (Sink:MinuteRetention)")]
    private partial void LogBeyondRetention(DateTime hour, DateTime keptFrom);

    [LoggerMessage(EventId = 5103, Level = LogLevel.Warning, Message = "Skipped an undecodable record on clicks.late at {Position}: {Error}")]
    private partial void LogUndecodable(TopicPartitionOffset? position, string error);

    [LoggerMessage(EventId = 5104, Level = LogLevel.Warning, Message = "Reading clicks.late failed: {Error}; retrying")]
    private partial void LogConsumeFailed(string error);

    [LoggerMessage(EventId = 5106, Level = LogLevel.Critical, Message = "Reading clicks.late failed fatally ({Code}: {Reason}); the late-click reconciler stops")]
    private partial void LogFatal(ErrorCode code, string reason);

    [LoggerMessage(EventId = 5105, Level = LogLevel.Warning, Message = "Committing clicks.late offsets failed: {Error}; retrying")]
    private partial void LogCommitFailed(string error);
}
