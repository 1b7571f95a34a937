using KafkaClicks.Contracts;
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
/// On TimescaleDB chunks are made on insert and its policies drop old ones: at start the job sets those policies to the
/// same options (see <see cref="ApplyTimescalePoliciesAsync"/>) and stops.
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

    /// <summary>Runs the upkeep once; null on TimescaleDB, where it sets the policies that do it from the options.</summary>
    public async Task<RetentionResult?> RunOnceAsync(CancellationToken cancellationToken)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        if (await DatabaseMigrator.RecordedFlavorAsync(connection, cancellationToken) == StorageFlavor.Timescale)
        {
            var changed = await ApplyTimescalePoliciesAsync(connection, _options, cancellationToken);
            LogTimescalePolicies(changed, _options.MinuteRetention, _options.RollupRetention);
            return null;
        }

        var now = _time.GetUtcNow().UtcDateTime;
        var created = await ScalarAsync<int>(connection, "SELECT ensure_ad_clicks_minute_partitions($1, $2)", now.Date, now + _options.PartitionsAhead, cancellationToken);
        var dropped = await ScalarAsync<int>(connection, "SELECT drop_ad_clicks_minute_partitions($1)", now - _options.MinuteRetention, null, cancellationToken);
        var deleted = await ScalarAsync<long>(connection, $"""
            WITH hourly AS (DELETE FROM {Tables.AdClicksHourly} WHERE hour < $1 RETURNING 1),
                 advertisers AS (DELETE FROM {Tables.AdvertiserClicksHourly} WHERE hour < $1 RETURNING 1),
                 daily AS (DELETE FROM {Tables.AdClicksDaily} WHERE day < $1 RETURNING 1)
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

    /// <summary>Longest look-back of the refresh policies of the hourly rollups (the migrations' start_offset).</summary>
    private static readonly TimeSpan HourlyPolicyLookBack = TimeSpan.FromDays(3);

    /// <summary>
    /// Makes TimescaleDB's policies follow the options, idempotently (several sink processes may start at once): the
    /// retention policy of ad_clicks_minute drops chunks older than <see cref="SinkOptions.MinuteRetention"/>, those of
    /// the three continuous aggregates drop rollup chunks older than <see cref="SinkOptions.RollupRetention"/>, and the
    /// refresh policies of the hourly aggregates look back no further than the minutes are kept: a refresh of an hour
    /// whose minutes were dropped would empty its rollup rows. Jobs keep their ids and schedules (alter_job); a missing
    /// retention policy is added. Returns how many policies were changed or added.
    /// </summary>
    public static async Task<int> ApplyTimescalePoliciesAsync(NpgsqlConnection connection, SinkOptions options, CancellationToken cancellationToken)
    {
        var lookBack = options.MinuteRetention < HourlyPolicyLookBack ? options.MinuteRetention : HourlyPolicyLookBack;
        (string Relation, string Proc, string Key, TimeSpan Value)[] wanted =
        [
            (Tables.AdClicksMinute, "policy_retention", "drop_after", options.MinuteRetention),
            (Tables.AdClicksHourly, "policy_retention", "drop_after", options.RollupRetention),
            (Tables.AdvertiserClicksHourly, "policy_retention", "drop_after", options.RollupRetention),
            (Tables.AdClicksDaily, "policy_retention", "drop_after", options.RollupRetention),
            (Tables.AdClicksHourly, "policy_refresh_continuous_aggregate", "start_offset", lookBack),
            (Tables.AdvertiserClicksHourly, "policy_refresh_continuous_aggregate", "start_offset", lookBack),
        ];

        var changed = 0;
        foreach (var (relation, _, _, value) in wanted.Where(w => w.Proc == "policy_retention"))
        {
            // Only where the policy is missing (removed by hand); if_not_exists covers another sink process adding it first.
            await using var add = new NpgsqlCommand("""
                SELECT add_retention_policy($1::regclass, drop_after => $2::interval, if_not_exists => true)
                WHERE NOT EXISTS (SELECT 1 FROM timescaledb_information.jobs j WHERE j.proc_name = 'policy_retention' AND j.hypertable_name = $1)
                """, connection);
            add.Parameters.Add(new NpgsqlParameter<string> { TypedValue = relation });
            add.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = value });
            changed += await add.ExecuteScalarAsync(cancellationToken) is null ? 0 : 1;
        }

        await using var alter = new NpgsqlCommand("""
            WITH stale AS MATERIALIZED (
                SELECT j.job_id, jsonb_set(j.config, ARRAY[w.key], to_jsonb(w.value::text)) AS config
                FROM timescaledb_information.jobs j
                JOIN unnest($1::text[], $2::text[], $3::text[], $4::interval[]) AS w(relation, proc, key, value)
                  ON j.hypertable_name = w.relation AND j.proc_name = w.proc
                WHERE (j.config ->> w.key)::interval IS DISTINCT FROM w.value)
            SELECT count(*) FROM stale s CROSS JOIN LATERAL alter_job(s.job_id, config => s.config) a
            """, connection);
        alter.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. wanted.Select(w => w.Relation)] });
        alter.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. wanted.Select(w => w.Proc)] });
        alter.Parameters.Add(new NpgsqlParameter<string[]> { TypedValue = [.. wanted.Select(w => w.Key)] });
        alter.Parameters.Add(new NpgsqlParameter<TimeSpan[]> { TypedValue = [.. wanted.Select(w => w.Value)] });
        changed += (int)(long)(await alter.ExecuteScalarAsync(cancellationToken))!;
        return changed;
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

    [LoggerMessage(EventId = 4203, Level = LogLevel.Information, Message = "TimescaleDB policies follow the options ({Changed} changed): minutes kept {MinuteRetention}, rollups kept {RollupRetention}")]
    private partial void LogTimescalePolicies(int changed, TimeSpan minuteRetention, TimeSpan rollupRetention);

    [LoggerMessage(EventId = 4202, Level = LogLevel.Warning, Message = "Retention run failed ({Error}); retrying in {Interval}")]
    private partial void LogRetentionFailed(string error, TimeSpan interval);
}
