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
/// </summary>
public sealed partial class AggregatorService : BackgroundService, IHealthCheck
{
    private readonly IConfiguration _configuration;
    private readonly KafkaClientFactory _kafka;
    private readonly AggregationOptions _options;
    private readonly ILoggerFactory _loggerFactory;
    private readonly ILogger<AggregatorService> _logger;
    private volatile KafkaStream? _stream;
    private volatile KafkaStream.State _state = KafkaStream.State.CREATED;

    public AggregatorService(IConfiguration configuration, KafkaClientFactory kafka, IOptions<AggregationOptions> options, ILoggerFactory loggerFactory)
    {
        _configuration = configuration;
        _kafka = kafka;
        _options = options.Value;
        _loggerFactory = loggerFactory;
        _logger = loggerFactory.CreateLogger<AggregatorService>();
    }

    /// <summary>The stream's current state (RUNNING once partitions are assigned and state is restored).</summary>
    public KafkaStream.State State => _state;

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        StreamizLogging.Instance.Use(_loggerFactory);
        var restarts = new StreamRestarts(TimeProvider.System);
        while (await RunStreamAsync(stoppingToken))
        {
            if (restarts.Next() is not { } pause)
            {
                throw new AggregatorStreamFailedException(
                    $"the aggregator's stream failed {StreamRestarts.MaxRestarts + 1} times within {StreamRestarts.Window.TotalMinutes:0} minutes");
            }

            LogRestarting(pause);
            await Task.Delay(pause, stoppingToken);
        }
    }

    /// <summary>Runs one Streamiz stream until the process stops (false) or the stream ends in ERROR (true).</summary>
    private async Task<bool> RunStreamAsync(CancellationToken stoppingToken)
    {
        var config = CreateStreamConfig(_configuration, _options);
        config.Logger = StreamizLogging.Instance;
        config.DeserializationExceptionHandler = (_, record, e) =>
        {
            AggregatorTelemetry.Undecodable();
            LogUndecodable(record.TopicPartitionOffset, e.Message);
            return ExceptionHandlerResponse.CONTINUE;
        };

        var (rawPartitions, minutePartitions) = await PartitionCountsAsync(stoppingToken);
        var markers = new FinalProgressMarkers(rawPartitions, minutePartitions);
        var failed = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        var stream = new KafkaStream(ClickAggregationTopology.Build(_options, markers, _kafka.Names), config,
            new RebalanceSafeClientSupplier(config, _kafka, _logger));
        _stream = stream;
        stream.StateChanged += (_, now) =>
        {
            _state = now;
            LogState(now);
            if (now == KafkaStream.State.ERROR)
            {
                failed.TrySetResult();
            }
        };
        try
        {
            await stream.StartAsync(stoppingToken);
            await failed.Task.WaitAsync(stoppingToken);
        }
        catch (Exception e) when (stoppingToken.IsCancellationRequested && e is OperationCanceledException or ObjectDisposedException)
        {
            // Stopped while starting or running: nothing to report.
            return false;
        }

        // Every stream thread died: a broker stall can end in TaskMigrated and metadata timeouts Streamiz does not recover
        // from. A new stream rejoins the group and restores what it needs from the changelog.
        stream.Dispose();
        return true;
    }

    /// <summary>
    /// The partition counts of clicks.raw (one task each, the number of tasks every progress marker names) and
    /// clicks.minute (each marker goes to all), retried until the broker answers: the stream cannot run without it.
    /// </summary>
    private async Task<(int Raw, int Minute)> PartitionCountsAsync(CancellationToken stoppingToken)
    {
        var pause = TimeSpan.FromMilliseconds(500);
        while (true)
        {
            try
            {
                using var admin = _kafka.Admin(_logger).Build();
                return (PartitionCount(admin, _kafka.Names.ClicksRaw), PartitionCount(admin, _kafka.Names.ClicksMinute));
            }
            catch (KafkaException e)
            {
                LogPartitionCountUnknown(e.Error.Reason, pause);
            }

            await Task.Delay(pause, stoppingToken);
            pause = TimeSpan.FromMilliseconds(Math.Min(pause.TotalMilliseconds * 2, 10_000));
        }
    }

    private static int PartitionCount(IAdminClient admin, string topic)
    {
        var metadata = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single();
        if (metadata.Error.IsError || metadata.Partitions.Count == 0)
        {
            throw new KafkaException(metadata.Error.IsError ? metadata.Error : new Error(ErrorCode.UnknownTopicOrPart, $"{topic} has no partitions"));
        }

        return metadata.Partitions.Count;
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
        Task.FromResult(_state == KafkaStream.State.RUNNING
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy($"aggregator stream is {_state}"));

    [LoggerMessage(EventId = 3001, Level = LogLevel.Information, Message = "Aggregator stream is {State}")]
    private partial void LogState(KafkaStream.State state);

    [LoggerMessage(EventId = 3002, Level = LogLevel.Error, Message = "Skipped undecodable click at {Position}: {Error}")]
    private partial void LogUndecodable(TopicPartitionOffset position, string error);

    [LoggerMessage(EventId = 3005, Level = LogLevel.Warning, Message = "The partition counts of the click topics are not known ({Error}); asking again in {Pause}")]
    private partial void LogPartitionCountUnknown(string error, TimeSpan pause);

    [LoggerMessage(EventId = 3003, Level = LogLevel.Error, Message = "Aggregator stream failed (ERROR: every stream thread died); starting a new stream in {Pause}")]
    private partial void LogRestarting(TimeSpan pause);
}
