using KafkaClicks.Contracts;
using System.Diagnostics.Metrics;
using Cronos;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Reconciler;

/// <summary>
/// The reconciler role: on the hourly schedule it reconciles the last whole hour, on the daily schedule the
/// previous UTC day; it counts discrepancies and alerts (a warning log and a metric) when a window differs by more
/// than <see cref="ReconcilerOptions.AlertThreshold"/>.
/// </summary>
/// <remarks>
/// Scheduled runs are recorded in the database with their schedule, and every pass does each due run that has none: so a
/// run missed while no reconciler was up, refused because its windows were not final yet, or failed (PostgreSQL or the
/// broker away) is made up on the next pass (after <see cref="ReconcilerOptions.RetryDelay"/>), and several reconciler
/// instances, which all keep the schedule, do each run once (they take turns on the reconciler's lock and skip a run
/// found done).
/// </remarks>
public sealed partial class ReconciliationScheduler : BackgroundService
{
    /// <summary>The names scheduled runs are recorded under (reconciliation_runs.schedule).</summary>
    public const string Hourly = "hourly", Daily = "daily";

    private static readonly Meter Meter = ServiceDefaultsExtensions.CreateMeter("Reconciler");
    private static readonly Counter<long> Corrected = Meter.CreateCounter<long>("kafkaclicks.reconciler.windows_corrected", "{window}", "Windows whose count the reconciler corrected.");
    private static readonly Counter<long> Alerts = Meter.CreateCounter<long>("kafkaclicks.reconciler.alerts", "{window}", "Windows that differed by more than the alert threshold.");
    private static readonly Counter<long> Runs = Meter.CreateCounter<long>("kafkaclicks.reconciler.runs", "{run}", "Scheduled runs by status.");

    private readonly ClickReconciler _reconciler;
    private readonly NpgsqlDataSource _dataSource;
    private readonly ReconcilerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ReconciliationScheduler> _logger;
    private readonly CronExpression _hourly;
    private readonly CronExpression _daily;

    public ReconciliationScheduler(ClickReconciler reconciler, NpgsqlDataSource dataSource, IOptions<ReconcilerOptions> options, TimeProvider time,
        ILogger<ReconciliationScheduler> logger)
    {
        _reconciler = reconciler;
        _dataSource = dataSource;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _hourly = CronExpression.Parse(_options.HourlySchedule);
        _daily = CronExpression.Parse(_options.DailySchedule);
    }

    /// <summary>Reconciles one range as a scheduled run would, with counting and alerting (a late-click recount uses it).</summary>
    public async Task<ReconcileReport> RunAsync(DateTime from, DateTime to, CancellationToken cancellationToken) =>
        Record(from, to, await _reconciler.RunAsync(new ReconcileRequest(from, to, null, false), null, cancellationToken));

    private ReconcileReport Record(DateTime from, DateTime to, ReconcileReport report)
    {
        Corrected.Add(report.WindowsCorrected);
        Runs.Add(1, new KeyValuePair<string, object?>("status", report.Status));
        var alerts = report.LargestDifferences.Where(d => Math.Abs(d.Difference) > _options.AlertThreshold).ToList();
        if (alerts.Count > 0)
        {
            Alerts.Add(alerts.Count);
            LogAlert(from, to, alerts.Count, alerts[0].AdId, alerts[0].Minute, alerts[0].Difference);
        }

        LogRun(from, to, report.Status, report.WindowsChecked, report.WindowsCorrected, report.RunId);
        return report;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        DateTime? keptSince = null;
        while (!stoppingToken.IsCancellationRequested)
        {
            var now = _time.GetUtcNow().UtcDateTime;
            var allDone = false;
            try
            {
                keptSince ??= await KeptSinceAsync(now, stoppingToken);
                allDone = await MakeUpAsync(keptSince.Value, now, stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or Confluent.Kafka.KafkaException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                LogPassFailed(e.Message);
            }

            now = _time.GetUtcNow().UtcDateTime;
            var next = Min(_hourly.GetNextOccurrence(now) ?? DateTime.MaxValue, _daily.GetNextOccurrence(now) ?? DateTime.MaxValue);
            if (!allDone)
            {
                next = Min(next, now + _options.RetryDelay);
            }

            await Task.Delay(next - now, _time, stoppingToken);
        }
    }

    /// <summary>
    /// Does every scheduled run due since <paramref name="keptSince"/> (and within <see cref="ReconcilerOptions.MakeUpWithin"/>)
    /// that has no record yet, oldest first; false when one could not be done now (it is tried again on the next pass).
    /// </summary>
    private async Task<bool> MakeUpAsync(DateTime keptSince, DateTime now, CancellationToken cancellationToken)
    {
        var since = Max(keptSince, now - _options.MakeUpWithin);
        var due = Due(Hourly, _hourly, since, now, at => Hour(at).AddHours(-1), at => Hour(at))
            .Concat(Due(Daily, _daily, since, now, at => at.Date.AddDays(-1), at => at.Date))
            .ToList();
        if (due.Count == 0)
        {
            return true;
        }

        var earliest = due.Min(d => d.From);
        var done = new Dictionary<string, HashSet<(DateTime, DateTime)>>
        {
            [Hourly] = await _reconciler.ScheduledDoneAsync(Hourly, earliest, cancellationToken),
            [Daily] = await _reconciler.ScheduledDoneAsync(Daily, earliest, cancellationToken),
        };
        foreach (var (schedule, from, to) in due.Where(d => !done[d.Schedule].Contains((d.From, d.To))).OrderBy(d => d.To).ThenBy(d => d.From))
        {
            try
            {
                if (await _reconciler.RunScheduledAsync(schedule, from, to, cancellationToken) is { } report)
                {
                    Record(from, to, report);
                }
            }
            catch (RangeNotFinalException e)
            {
                LogDeferred(schedule, from, to, e.FinalThrough);
                return false;
            }
            catch (RangeBeyondMinuteRetentionException e)
            {
                // Never correctable again: its minutes are gone or going. Left undone rather than retried for good.
                LogBeyondRetention(schedule, from, to, e.KeptFrom);
            }
            catch (Exception e) when (e is NpgsqlException or Confluent.Kafka.KafkaException or TimeoutException && !cancellationToken.IsCancellationRequested)
            {
                Runs.Add(1, new KeyValuePair<string, object?>("status", "failed"));
                LogFailed(from, to, e.Message);
                return false;
            }
        }

        return true;
    }

    /// <summary>The runs of one schedule whose time came after <paramref name="since"/> and by <paramref name="now"/>.</summary>
    private static IEnumerable<(string Schedule, DateTime From, DateTime To)> Due(string schedule, CronExpression cron, DateTime since, DateTime now,
        Func<DateTime, DateTime> from, Func<DateTime, DateTime> to) =>
        since >= now ? [] : cron.GetOccurrences(since, now, fromInclusive: false, toInclusive: true).Select(at => (schedule, from(at), to(at)));

    /// <summary>When the schedule started being kept on this database: set by the first reconciler to ask.</summary>
    private async Task<DateTime> KeptSinceAsync(DateTime now, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""
            WITH added AS (
                INSERT INTO {Tables.ReconciliationSchedule} (schedule, kept_since) VALUES ('all', $1) ON CONFLICT (schedule) DO NOTHING RETURNING kept_since
            )
            SELECT kept_since FROM added UNION ALL SELECT kept_since FROM {Tables.ReconciliationSchedule} WHERE schedule = 'all'
            """);
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = now });
        return DateTime.SpecifyKind((DateTime)(await command.ExecuteScalarAsync(cancellationToken))!, DateTimeKind.Utc);
    }

    private static DateTime Hour(DateTime at) => TimeBuckets.HourOf(at);

    private static DateTime Min(DateTime a, DateTime b) => a < b ? a : b;

    private static DateTime Max(DateTime a, DateTime b) => a > b ? a : b;

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Reconciled {From:o}..{To:o}: {Status}, {Checked} windows checked, {Corrected} corrected (run {RunId})")]
    private partial void LogRun(DateTime from, DateTime to, string status, long @checked, long corrected, long? runId);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Reconciliation {From:o}..{To:o} found {Count} windows off by more than the threshold; largest: ad {AdId} at {Minute:o} by {Difference}")]
    private partial void LogAlert(DateTime from, DateTime to, int count, long adId, DateTime minute, long difference);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Error, Message = "Reconciliation {From:o}..{To:o} failed: {Error}; retrying")]
    private partial void LogFailed(DateTime from, DateTime to, string error);

    [LoggerMessage(EventId = 5004, Level = LogLevel.Information, Message = "The {Schedule} reconciliation of {From:o}..{To:o} waits: windows are final only through {FinalThrough:o}")]
    private partial void LogDeferred(string schedule, DateTime from, DateTime to, DateTime finalThrough);

    [LoggerMessage(EventId = 5006, Level = LogLevel.Warning, Message = "The {Schedule} reconciliation of {From:o}..{To:o} is skipped: minutes are kept only from {KeptFrom:o} (Sink:MinuteRetention)")]
    private partial void LogBeyondRetention(string schedule, DateTime from, DateTime to, DateTime keptFrom);

    [LoggerMessage(EventId = 5005, Level = LogLevel.Error, Message = "Finding the scheduled reconciliations to do failed: {Error}; retrying")]
    private partial void LogPassFailed(string error);
}

public static class ReconcilerServiceCollectionExtensions
{
    /// <summary>Registers the reconciler role: scheduled recounts of clicks.raw against the database.</summary>
    public static IHostApplicationBuilder AddReconciler(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<ReconcilerOptions>().BindConfiguration(ReconcilerOptions.Section)
            .Validate(o => CronExpression.TryParse(o.HourlySchedule, out _) && CronExpression.TryParse(o.DailySchedule, out _),
                "Reconciler:HourlySchedule and Reconciler:DailySchedule must be cron expressions (5 fields, UTC).")
            .Validate(o => o.Readers >= 0, "Reconciler:Readers must be 0 (two per processor) or a positive number of consumers.")
            .Validate(o => o.LateClickDelay > TimeSpan.Zero, "Reconciler:LateClickDelay must be positive.")
            .Validate(o => o.Lateness >= TimeSpan.Zero, "Reconciler:Lateness must be zero or positive: it is how far before a range the log is read.")
            .Validate(o => o.ImpressionsInMemory > 0, ReconcilerOptions.NonPositiveImpressionsInMemory)
            .Validate(o => o.SpillDirectory.Length == 0 || Directory.Exists(o.SpillDirectory), "Reconciler:SpillDirectory must name an existing folder.")
            .Validate(o => o.RetryDelay > TimeSpan.Zero, "Reconciler:RetryDelay must be positive.")
            .Validate(o => o.MakeUpWithin >= TimeSpan.Zero, "Reconciler:MakeUpWithin must be zero or positive: how far back missed scheduled runs are made up.")
            .ValidateOnStart();
        builder.Services.AddImpressionOptions();
        builder.Services.AddPostgres(builder.Configuration);
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddKafka();
        builder.Services.AddSingleton(sp => new RawLogCounter(
            sp.GetRequiredService<KafkaClientFactory>(),
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value.Lateness,
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value.EffectiveReaders,
            sp.GetRequiredService<IOptions<ImpressionOptions>>().Value.Lifetime,
            sp.GetRequiredService<KafkaClientFactory>().Names.ClicksRaw,
            sp.GetRequiredService<ILogger<RawLogCounter>>(),
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value.ImpressionsInMemory,
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value.SpillDirectory));
        builder.Services.AddSingleton(sp => new ClickReconciler(
            sp.GetRequiredService<NpgsqlDataSource>(),
            sp.GetRequiredService<RawLogCounter>(),
            AggregatorGrace(sp.GetRequiredService<IConfiguration>()),
            sp.GetRequiredService<TimeProvider>(),
            MinuteRetention(sp.GetRequiredService<IConfiguration>())));
        builder.Services.AddSingleton<ReconciliationScheduler>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ReconciliationScheduler>());
        builder.Services.AddHostedService<LateClickReconciler>();
        return builder;
    }

    /// <summary>Aggregator:Grace as the aggregators are configured (the same configuration), which says when a window is closed.</summary>
    public static TimeSpan AggregatorGrace(IConfiguration configuration) =>
        configuration.GetValue("Aggregator:Grace", ClickReconciler.DefaultGrace);

    /// <summary>Sink:MinuteRetention as the sinks are configured (the same configuration): older minutes are dropped and not corrected.</summary>
    public static TimeSpan MinuteRetention(IConfiguration configuration) =>
        configuration.GetValue("Sink:MinuteRetention", SharedDefaults.MinuteRetention);
}
