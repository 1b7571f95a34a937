using KafkaClicks.Contracts;
using KafkaClicks.Migrations;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Sink;

/// <summary>
/// Keeps ad_clicks_hourly, ad_clicks_daily and advertiser_clicks_hourly current: every
/// <see cref="SinkOptions.RollupRefreshInterval"/> it recomputes what writers marked dirty in the same transaction as
/// their minutes (so late corrections are never missed, even across crashes). Whole UTC hours marked in
/// <c>rollup_dirty</c>: plain PostgreSQL refresh_ad_clicks_rollup_hours(), TimescaleDB <c>CALL
/// refresh_continuous_aggregate</c> on the aggregates, outside a transaction. On plain PostgreSQL the sink and the
/// reconciler append the ads they change, per hour, to <c>rollup_ad_changes</c> instead, and just those ads' hours are
/// recomputed (<see cref="Rollups.RefreshMarkedAdsAsync"/>), which deletes exactly the rows it took. A whole-hour mark is
/// removed only if it was not renewed while it was being refreshed.
/// </summary>
public sealed partial class RollupRefreshJob : BackgroundService
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly SinkOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<RollupRefreshJob> _logger;
    private StorageFlavor? _flavor;

    public RollupRefreshJob(NpgsqlDataSource dataSource, IOptions<SinkOptions> options, TimeProvider time, ILogger<RollupRefreshJob> logger)
    {
        _dataSource = dataSource;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>
    /// Refreshes every (hour, ad) and every whole hour marked dirty now; returns how many marks were recomputed (whole
    /// hours and (hour, ad) pairs; marks past the minute retention are removed without a recompute).
    /// </summary>
    public async Task<int> RunOnceAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        _flavor ??= await DatabaseMigrator.RecordedFlavorAsync(connection, cancellationToken) ?? StorageFlavor.Plain;
        // Minutes older than the retention are gone (or about to be): recomputing their hours would empty the rollups.
        var oldest = _time.GetUtcNow().UtcDateTime - _options.MinuteRetention;
        var adHours = await Rollups.RefreshMarkedAdsAsync(connection, _flavor.Value, oldest, cancellationToken);
        SinkMetrics.RollupAdHoursRefreshed.Add(adHours);
        var marks = await DirtyHoursAsync(connection, cancellationToken);
        if (marks.Count == 0)
        {
            return (int)adHours;
        }

        var refreshed = 0;
        foreach (var (from, to) in Ranges(marks.Where(m => m.Hour >= oldest).Select(m => m.Hour)))
        {
            await Rollups.RefreshAsync(connection, _flavor.Value, from, to, cancellationToken);
            refreshed += (int)((to - from) / TimeBuckets.Hour);
        }

        await using (var clear = new NpgsqlCommand(
            $"DELETE FROM {Tables.RollupDirty} d USING unnest($1::timestamptz[], $2::bigint[]) AS m(hour, version) WHERE d.hour = m.hour AND d.version = m.version",
            connection))
        {
            clear.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = marks.Select(m => m.Hour).ToArray() });
            clear.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = marks.Select(m => m.Version).ToArray() });
            await clear.ExecuteNonQueryAsync(cancellationToken);
        }

        SinkMetrics.RollupHoursRefreshed.Add(refreshed);
        LogRefreshed(refreshed, marks[0].Hour, marks[^1].Hour);
        return refreshed + (int)adHours;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.RollupRefreshInterval, _time);
        do
        {
            try
            {
                await RunOnceAsync(stoppingToken);
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                SinkMetrics.MaintenanceFailures.Add(1, new KeyValuePair<string, object?>("job", "rollup_refresh"));
                LogRefreshFailed(e.Message, _options.RollupRefreshInterval);
            }
        }
        while (await timer.TickAsync(stoppingToken));
    }

    private static async Task<List<(DateTime Hour, long Version)>> DirtyHoursAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var marks = new List<(DateTime, long)>();
        await using var command = new NpgsqlCommand($"SELECT hour, version FROM {Tables.RollupDirty} ORDER BY hour", connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            marks.Add((reader.GetFieldValue<DateTime>(0), reader.GetInt64(1)));
        }

        return marks;
    }

    /// <summary>Sorted hours merged into contiguous [from, to) ranges, so a backlog costs one refresh per gap, not per hour.</summary>
    private static IEnumerable<(DateTime From, DateTime To)> Ranges(IEnumerable<DateTime> sortedHours)
    {
        DateTime? from = null;
        var to = DateTime.MinValue;
        foreach (var hour in sortedHours)
        {
            if (from is not null && hour != to)
            {
                yield return (from.Value, to);
                from = null;
            }

            from ??= hour;
            to = hour + TimeBuckets.Hour;
        }

        if (from is not null)
        {
            yield return (from.Value, to);
        }
    }

    [LoggerMessage(EventId = 4101, Level = LogLevel.Debug, Message = "Refreshed {Hours} rollup hours, marked from {First:o} to {Last:o}")]
    private partial void LogRefreshed(int hours, DateTime first, DateTime last);

    [LoggerMessage(EventId = 4102, Level = LogLevel.Warning, Message = "Rollup refresh failed ({Error}); the marked hours stay dirty and are retried in {Interval}")]
    private partial void LogRefreshFailed(string error, TimeSpan interval);
}
