using KafkaClicks.Migrations;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Sink;

/// <summary>What one retention run did.</summary>
public sealed record RetentionResult(int PartitionsCreated, int PartitionsDropped, long RollupRowsDeleted);

/// <summary>
/// Plain PostgreSQL storage upkeep, at start and every <see cref="SinkOptions.RetentionInterval"/>: creates the daily
/// minute partitions <see cref="SinkOptions.PartitionsAhead"/> ahead, drops minute partitions whose whole day is older
/// than <see cref="SinkOptions.MinuteRetention"/>, and deletes rollup rows older than <see cref="SinkOptions.RollupRetention"/>.
/// On TimescaleDB the chunk and retention policies do all of this and the job does nothing.
/// </summary>
public sealed partial class RetentionJob : BackgroundService
{
    private readonly NpgsqlDataSource _dataSource;
    private readonly SinkOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<RetentionJob> _logger;

    public RetentionJob(NpgsqlDataSource dataSource, IOptions<SinkOptions> options, TimeProvider time, ILogger<RetentionJob> logger)
    {
        _dataSource = dataSource;
        _options = options.Value;
        _time = time;
        _logger = logger;
    }

    /// <summary>Runs the upkeep once; null on TimescaleDB, where its policies do it.</summary>
    public async Task<RetentionResult?> RunOnceAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        if (await DatabaseMigrator.RecordedFlavorAsync(connection, cancellationToken) == StorageFlavor.Timescale)
        {
            return null;
        }

        var now = _time.GetUtcNow().UtcDateTime;
        var created = await ScalarAsync<int>(connection, "SELECT ensure_ad_clicks_minute_partitions($1, $2)", now.Date, now + _options.PartitionsAhead, cancellationToken);
        var dropped = await ScalarAsync<int>(connection, "SELECT drop_ad_clicks_minute_partitions($1)", now - _options.MinuteRetention, null, cancellationToken);
        var deleted = await ScalarAsync<long>(connection, """
            WITH hourly AS (DELETE FROM ad_clicks_hourly WHERE hour < $1 RETURNING 1),
                 advertisers AS (DELETE FROM advertiser_clicks_hourly WHERE hour < $1 RETURNING 1),
                 daily AS (DELETE FROM ad_clicks_daily WHERE day < $1 RETURNING 1)
            SELECT (SELECT count(*) FROM hourly) + (SELECT count(*) FROM advertisers) + (SELECT count(*) FROM daily)
            """, now - _options.RollupRetention, null, cancellationToken);
        var result = new RetentionResult(created, dropped, deleted);
        LogRetention(created, dropped, deleted);
        return result;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.RetentionInterval, _time);
        do
        {
            try
            {
                if (await RunOnceAsync(stoppingToken) is null)
                {
                    return;
                }
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException && !stoppingToken.IsCancellationRequested)
            {
                SinkMetrics.MaintenanceFailures.Add(1, new KeyValuePair<string, object?>("job", "retention"));
                LogRetentionFailed(e.Message, _options.RetentionInterval);
            }
        }
        while (await timer.TickAsync(stoppingToken));
    }

    private static async Task<T> ScalarAsync<T>(NpgsqlConnection connection, string sql, DateTime first, DateTime? second, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = first });
        if (second is { } value)
        {
            command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = value });
        }

        return (T)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    [LoggerMessage(EventId = 4201, Level = LogLevel.Information, Message = "Retention: {Created} minute partitions created ahead, {Dropped} dropped, {Deleted} rollup rows deleted")]
    private partial void LogRetention(int created, int dropped, long deleted);

    [LoggerMessage(EventId = 4202, Level = LogLevel.Warning, Message = "Retention run failed ({Error}); retrying in {Interval}")]
    private partial void LogRetentionFailed(string error, TimeSpan interval);
}
