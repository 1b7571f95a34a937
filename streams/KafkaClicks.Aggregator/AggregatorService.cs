using Confluent.Kafka;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Topology;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.SerDes;

namespace KafkaClicks.Aggregator;

/// <summary>
/// Hosts the aggregation topology with RocksDB state under <see cref="AggregationOptions.StateDirectoryFor"/>.
/// At-least-once by default: the topology's impression store makes reprocessing after a crash idempotent; exactly-once
/// (Kafka transactions) where <see cref="AggregationOptions.Guarantee"/> asks for it, on a real Kafka cluster.
/// It counts only while clicks.raw has the partition count the deployment records (<see cref="ClicksRawPartitionCount"/>):
/// with another count, one ad's clicks would be counted by two tasks. It checks before each stream starts and every
/// few seconds while it runs, and otherwise stops the stream and reports why in its health check until they agree.
/// </summary>
public sealed partial class AggregatorService : BackgroundService, IHealthCheck
{
    private static readonly TimeSpan PartitionCheckInterval = TimeSpan.FromSeconds(5);
    private static readonly TimeSpan PartitionCheckTimeout = TimeSpan.FromSeconds(10);
    private readonly IConfiguration _configuration;
    private readonly KafkaClientFactory _kafka;
    private readonly AggregationOptions _options;
    private readonly int _recordedPartitions;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger<AggregatorService> _logger;
    private volatile KafkaStream? _stream;
    private volatile KafkaStream.State _state = KafkaStream.State.CREATED;
    private volatile string? _refusal;

    // The state folder's generation: 0, the configured folder; n > 0, a folder of its own under it (see RunStreamAsync).
    private int _stateGeneration;
    private const string RestartFolderPrefix = "restart-";

    public AggregatorService(IConfiguration configuration, KafkaClientFactory kafka, IOptions<AggregationOptions> options,
        IOptions<KafkaOptions> kafkaOptions, ILoggerFactory loggerFactory)
    {
        _configuration = configuration;
        _kafka = kafka;
        _options = options.Value;
        _recordedPartitions = kafkaOptions.Value.ClicksRawPartitions;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<AggregatorService>();
    }

    /// <summary>The stream's current state (RUNNING once partitions are assigned and state is restored).</summary>
    public KafkaStream.State State => _state;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        StreamizLogging.Instance.Use(_loggerFactory);
        RemoveRestartFolders(CreateStreamConfig(_configuration, _options).StateDir);
        var restarts = new StreamRestarts(TimeProvider.System);
        using var admin = _kafka.Admin(_logger).Build();
        while (true)
        {
            await WaitForRecordedPartitionCountAsync(admin, stoppingToken);
            switch (await RunStreamAsync(admin, stoppingToken))
            {
                case StreamEnd.Stopped:
                    return;
                case StreamEnd.PartitionCountChanged:
                    continue;
            }

            if (restarts.Next() is not { } pause)
            {
                throw new AggregatorStreamFailedException(
                    $"the aggregator's stream failed {StreamRestarts.MaxRestarts + 1} times within {StreamRestarts.Window.TotalMinutes:0} minutes");
            }

            LogRestarting(pause);
            await Task.Delay(pause, stoppingToken);
        }
    }

    private enum StreamEnd
    {
        Stopped,
        Failed,
        PartitionCountChanged,
    }

    /// <summary>Returns once clicks.raw has the recorded partition count; until then the aggregator is not ready and says why.</summary>
    private async Task WaitForRecordedPartitionCountAsync(IAdminClient admin, CancellationToken stoppingToken)
    {
        while (await PartitionCountMismatchAsync(admin, stoppingToken) is { } mismatch)
        {
            if (_refusal != mismatch)
            {
                _refusal = mismatch;
                LogPartitionCountRefused(mismatch);
            }

            await Task.Delay(PartitionCheckInterval, stoppingToken);
        }

        if (_refusal is not null)
        {
            _refusal = null;
            LogPartitionCountAccepted(_kafka.Names.ClicksRaw, _recordedPartitions);
        }
    }

    /// <summary>
    /// What differs between clicks.raw's partition count and the recorded one, or null when they agree or the count cannot
    /// be read now (the cluster does not answer, the topic is not declared yet: the stream waits for the brokers anyway).
    /// </summary>
    private async Task<string?> PartitionCountMismatchAsync(IAdminClient admin, CancellationToken stoppingToken)
    {
        var topic = _kafka.Names.ClicksRaw;
        try
        {
            var partitions = await Task.Run(() => admin.PartitionCount(topic, PartitionCheckTimeout), stoppingToken);
            return partitions == _recordedPartitions ? null : ClicksRawPartitionCount.Mismatch(topic, partitions, _recordedPartitions);
        }
        catch (KafkaException)
        {
            return null;
        }
    }

    /// <summary>Completes when clicks.raw's partition count stops agreeing with the recorded one.</summary>
    private async Task WatchPartitionCountAsync(IAdminClient admin, CancellationToken cancellationToken)
    {
        while (true)
        {
            await Task.Delay(PartitionCheckInterval, cancellationToken);
            if (await PartitionCountMismatchAsync(admin, cancellationToken) is { } mismatch)
            {
                _refusal = mismatch;
                LogPartitionCountRefused(mismatch);
                return;
            }
        }
    }

    /// <summary>Runs one Streamiz stream until the process stops, the stream ends in ERROR, or clicks.raw's partition count changes.</summary>
    private async Task<StreamEnd> RunStreamAsync(IAdminClient admin, CancellationToken stoppingToken)
    {
        var config = CreateStreamConfig(_configuration, _options);
        if (_stateGeneration > 0)
        {
            config.StateDir = Path.Combine(config.StateDir, RestartFolderPrefix + _stateGeneration);
        }

        config.Logger = StreamizLogging.Instance;
        config.DeserializationExceptionHandler = (_, record, e) =>
        {
            AggregatorTelemetry.Undecodable();
            LogUndecodable(record.TopicPartitionOffset, e.Message);
            return ExceptionHandlerResponse.CONTINUE;
        };

        // One task per recorded clicks.raw partition (the topic has that many: the stream runs only then).
        var markers = new FinalProgressMarkers(_recordedPartitions, await MinutePartitionCountAsync(admin, stoppingToken));
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stream = new KafkaStream(ClickAggregationTopology.Build(_options, markers, _kafka.Names), config,
            new RebalanceSafeClientSupplier(config, _kafka, _logger));
        _stream = stream;
        var ran = false;
        stream.StateChanged += (_, now) =>
        {
            _state = now;
            LogState(now);
            ran |= now == KafkaStream.State.RUNNING;
            if (now == KafkaStream.State.ERROR)
            {
                failed.TrySetResult();
            }
        };
        using var watching = CancellationTokenSource.CreateLinkedTokenSource(stoppingToken);
        try
        {
            await stream.StartAsync(stoppingToken);
            var changed = WatchPartitionCountAsync(admin, watching.Token);
            if (await Task.WhenAny(failed.Task, changed).WaitAsync(stoppingToken) == changed)
            {
                await changed;
                // Stopped before it counts a click placed by another count; its open windows are restored from the
                // changelog when it starts again.
                stream.Dispose();
                return StreamEnd.PartitionCountChanged;
            }
        }
        catch (Exception e) when (stoppingToken.IsCancellationRequested && e is OperationCanceledException or ObjectDisposedException)
        {
            // Stopped while starting or running: nothing to report.
            return StreamEnd.Stopped;
        }
        finally
        {
            await watching.CancelAsync();
        }

        // Every stream thread died: a broker stall can end in TaskMigrated and metadata timeouts Streamiz does not recover
        // from. A new stream rejoins the group and restores what it needs from the changelog.
        stream.Dispose();

        // A stream that failed before it ever ran could not open its state: a thread that died fenced stops closing its
        // tasks at the first that throws, and RocksDB refuses a second open of a store this process still holds, so
        // every stream on that folder fails alike until the process ends. The next one takes a folder of its own and
        // restores the impression store from its changelog.
        if (!ran)
        {
            _stateGeneration++;
            LogStateFolderChanged(config.StateDir, _stateGeneration);
        }

        return StreamEnd.Failed;
    }

    /// <summary>
    /// clicks.minute's partition count (every progress marker goes to each partition), retried until the cluster answers:
    /// the stream cannot run without it either.
    /// </summary>
    private async Task<int> MinutePartitionCountAsync(IAdminClient admin, CancellationToken stoppingToken)
    {
        var topic = _kafka.Names.ClicksMinute;
        var pause = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            try
            {
                return await Task.Run(() => admin.PartitionCount(topic, PartitionCheckTimeout), stoppingToken);
            }
            catch (KafkaException e) when (!e.Error.IsFatal)
            {
                LogPartitionCountUnknown(topic, e.Error.Reason, pause);
            }

            await Task.Delay(pause, stoppingToken);
            pause = TimeSpan.FromMilliseconds(Math.Min(pause.TotalMilliseconds * 2, 10_000));
        }
    }

    /// <summary>
    /// Streamiz' configuration for these options: the guarantee, the commit interval, the state folder. <c>Kafka:Client</c>,
    /// <c>Kafka:Producer</c> and <c>Kafka:Consumer</c> reach Streamiz' clients through <see cref="RebalanceSafeClientSupplier"/>,
    /// never through this config: StreamConfig is also a dictionary, and binding any configuration section onto it
    /// rewrites every entry, which it refuses for its producer settings under exactly-once (the aggregator did not start).
    /// </summary>
    public static StreamConfig<StringSerDes, StringSerDes> CreateStreamConfig(IConfiguration configuration, AggregationOptions options)
    {
        var bootstrap = configuration[$"{KafkaOptions.Section}:BootstrapServers"];
        var config = new StreamConfig<StringSerDes, StringSerDes>
        {
            ApplicationId = KafkaOptions.NamesOf(configuration).Of(options.ApplicationId),
            BootstrapServers = bootstrap,
            StateDir = options.StateDirectoryFor(bootstrap ?? ""),
            NumStreamThreads = options.EffectiveThreads,
            Guarantee = options.Guarantee == AggregatorGuarantee.ExactlyOnce ? ProcessingGuarantee.EXACTLY_ONCE : ProcessingGuarantee.AT_LEAST_ONCE,
            AutoOffsetReset = AutoOffsetReset.Earliest,
            SessionTimeoutMs = 6000,
            HeartbeatIntervalMs = 1500,
            // Streamiz queues each poll's records per partition in a list it takes from the front, moving the rest
            // for every record: 5,000 per poll cost the stream thread about a quarter of its time (aggregate
            // benchmark: 46-48k clicks/s at 5,000, 62-65k at 200-1,000).
            MaxPollRecords = 1000,
            FetchWaitMaxMs = KafkaClientFactory.DefaultFetchWaitMaxMs,
            DefaultStateStoreCacheMaxBytes = 64L * 1024 * 1024,
            ReplicationFactor = configuration.GetValue<short?>($"{KafkaOptions.Section}:ReplicationFactor") ?? new KafkaOptions().ReplicationFactor,
        };

        // Setting Guarantee resets the commit interval (Streamiz: 30 s at-least-once, 100 ms exactly-once), so this
        // comes after it.
        config.CommitIntervalMs = (long)options.EffectiveCommitInterval.TotalMilliseconds;
        return config;
    }

    public override async Task StopAsync(CancellationToken cancellationToken)
    {
        await base.StopAsync(cancellationToken);
        _stream?.Dispose();
        StreamizLogging.Instance.Release(_loggerFactory);
    }

    public Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        Task.FromResult(_refusal is { } refusal
            ? HealthCheckResult.Unhealthy($"not counting: {refusal}")
            : _state == KafkaStream.State.RUNNING
                ? HealthCheckResult.Healthy()
                : HealthCheckResult.Unhealthy($"aggregator stream is {_state}"));

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Aggregator stream is {State}")]
    private partial void LogState(KafkaStream.State state);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "Skipped undecodable click at {Position}: {Error}")]
    private partial void LogUndecodable(TopicPartitionOffset position, string error);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Error, Message = "Aggregator stopped counting: {Reason}")]
    private partial void LogPartitionCountRefused(string reason);

    [LoggerMessage(EventId = 3006, Level = LogLevel.Information, Message = "{Topic} has the recorded {Partitions} partitions: the aggregator counts")]
    private partial void LogPartitionCountAccepted(string topic, int partitions);

    [LoggerMessage(EventId = 3007, Level = LogLevel.Warning, Message = "The partition count of {Topic} is not known ({Error}); asking again in {Pause}")]
    private partial void LogPartitionCountUnknown(string topic, string error, TimeSpan pause);

    /// <summary>Deletes the folders earlier processes' streams took after a failure (no process holds them open now).</summary>
    private void RemoveRestartFolders(string stateDirectory)
    {
        if (!Directory.Exists(stateDirectory))
        {
            return;
        }

        foreach (var folder in Directory.EnumerateDirectories(stateDirectory, RestartFolderPrefix + "*"))
        {
            try
            {
                Directory.Delete(folder, recursive: true);
            }
            catch (IOException e)
            {
                LogRestartFolderKept(folder, e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 3009, Level = LogLevel.Warning, Message = "The aggregator's stream failed before it ran, in {StateDirectory}: the state there cannot be opened again by this process; the next stream restores its state from the changelog into generation {Generation}")]
    private partial void LogStateFolderChanged(string stateDirectory, int generation);

    [LoggerMessage(EventId = 3010, Level = LogLevel.Warning, Message = "Could not delete {Folder}, left by an earlier run: {Error}")]
    private partial void LogRestartFolderKept(string folder, string error);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Aggregator stream failed (ERROR: every stream thread died); starting a new stream in {Pause}")]
    private partial void LogRestarting(TimeSpan pause);
}
