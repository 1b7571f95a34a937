using System.Diagnostics.Metrics;
using Cronos;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
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
public sealed partial class ReconciliationScheduler : BackgroundService
{
    private static readonly Meter Meter = ServiceDefaultsExtensions.CreateMeter("Reconciler");
    private static readonly Counter<long> Corrected = Meter.CreateCounter<long>("kafkaclicks.reconciler.windows_corrected", "{window}", "Windows whose count the reconciler corrected.");
    private static readonly Counter<long> Alerts = Meter.CreateCounter<long>("kafkaclicks.reconciler.alerts", "{window}", "Windows that differed by more than the alert threshold.");
    private static readonly Counter<long> Runs = Meter.CreateCounter<long>("kafkaclicks.reconciler.runs", "{run}", "Scheduled runs by status.");

    private readonly ClickReconciler _reconciler;
    private readonly ReconcilerOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ReconciliationScheduler> _logger;
    private readonly CronExpression _hourly;
    private readonly CronExpression _daily;

    public ReconciliationScheduler(ClickReconciler reconciler, IOptions<ReconcilerOptions> options, TimeProvider time, ILogger<ReconciliationScheduler> logger)
    {
        _reconciler = reconciler;
        _options = options.Value;
        _time = time;
        _logger = logger;
        _hourly = CronExpression.Parse(_options.HourlySchedule);
        _daily = CronExpression.Parse(_options.DailySchedule);
    }

    /// <summary>
    /// Reconciles one range as a scheduled run would, with counting and alerting; <paramref name="writtenUntil"/>
    /// extends the read to records written by then (see <see cref="ReconcileRequest"/>).
    /// </summary>
    public async Task<ReconcileReport> RunAsync(DateTime from, DateTime to, CancellationToken cancellationToken, DateTime? writtenUntil = null)
    {
        var report = await _reconciler.RunAsync(new ReconcileRequest(from, to, null, false, writtenUntil), null, cancellationToken);
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
        while (!stoppingToken.IsCancellationRequested)
        {
            var now = _time.GetUtcNow().UtcDateTime;
            var nextHourly = _hourly.GetNextOccurrence(now) ?? DateTime.MaxValue;
            var nextDaily = _daily.GetNextOccurrence(now) ?? DateTime.MaxValue;
            var next = nextHourly < nextDaily ? nextHourly : nextDaily;
            await Task.Delay(next - now, _time, stoppingToken);
            var hour = new DateTime(next.Ticks - (next.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc);
            var (from, to) = next == nextDaily ? (next.Date.AddDays(-1), next.Date) : (hour.AddHours(-1), hour);
            try
            {
                await RunAsync(from, to, stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or Confluent.Kafka.KafkaException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                Runs.Add(1, new KeyValuePair<string, object?>("status", "failed"));
                LogFailed(from, to, e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 5001, Level = LogLevel.Information, Message = "Reconciled {From:o}..{To:o}: {Status}, {Checked} windows checked, {Corrected} corrected (run {RunId})")]
    private partial void LogRun(DateTime from, DateTime to, string status, long @checked, long corrected, long? runId);

    [LoggerMessage(EventId = 5002, Level = LogLevel.Warning, Message = "Reconciliation {From:o}..{To:o} found {Count} windows off by more than the threshold; largest: ad {AdId} at {Minute:o} by {Difference}")]
    private partial void LogAlert(DateTime from, DateTime to, int count, long adId, DateTime minute, long difference);

    [LoggerMessage(EventId = 5003, Level = LogLevel.Error, Message = "Reconciliation {From:o}..{To:o} failed: {Error}")]
    private partial void LogFailed(DateTime from, DateTime to, string error);
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
            .Validate(o => o.Lateness >= TimeSpan.Zero, "Reconciler:Lateness must be zero or positive: it is how far past a range the log is read.")
            .Validate(o => o.DedupeLookback >= TimeSpan.Zero, ReconcilerOptions.NegativeDedupeLookback)
            .ValidateOnStart();
        builder.Services.AddPostgres(builder.Configuration);
        builder.Services.AddSingleton(sp => new RawLogCounter(
            sp.GetRequiredService<IConfiguration>()[$"{KafkaOptions.Section}:BootstrapServers"]!,
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value.Lateness,
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value.EffectiveReaders,
            sp.GetRequiredService<IOptions<ReconcilerOptions>>().Value.DedupeLookback,
            KafkaOptions.NamesOf(sp.GetRequiredService<IConfiguration>()).ClicksRaw,
            sp.GetRequiredService<ILogger<RawLogCounter>>()));
        builder.Services.AddSingleton<ClickReconciler>();
        builder.Services.AddSingleton<ReconciliationScheduler>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<ReconciliationScheduler>());
        builder.Services.AddHostedService<LateClickReconciler>();
        return builder;
    }
}
