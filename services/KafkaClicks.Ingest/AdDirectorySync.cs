using System.Diagnostics;
using System.Runtime.CompilerServices;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Ingest;

/// <summary>
/// Keeps <see cref="LocalAdDirectory"/> in step with the ads table: a full copy when it has none (binary COPY in one
/// snapshot), then every <see cref="AdDirectoryOptions.SyncInterval"/> the rows stamped by transactions at or after the
/// last snapshot's xmin (see infra/sql/012_ad_changes.sql), so a transaction that commits late is never skipped.
/// Changed ads are dropped from the in-memory cache, so a new URL is followed within a sync. While PostgreSQL is
/// unreachable it retries, and clicks are routed from the copy.
/// </summary>
public sealed partial class AdDirectorySync(
    LocalAdDirectory directory, AdDirectory ads, NpgsqlDataSource dataSource, IOptions<IngestOptions> options, ILogger<AdDirectorySync> logger)
    : BackgroundService
{
    private const string SnapshotXmin = "SELECT pg_snapshot_xmin(pg_current_snapshot())::text";
    private readonly TimeSpan _interval = options.Value.AdDirectory.SyncInterval;
    private bool _failing;
    private string? _origin;

    /// <summary>When the last sync finished (UTC), or null before the first.</summary>
    public DateTimeOffset? LastSyncedAt { get; private set; }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        while (!stoppingToken.IsCancellationRequested)
        {
            try
            {
                await SyncOnceAsync(stoppingToken);
                LastSyncedAt = DateTimeOffset.UtcNow;
                if (_failing)
                {
                    _failing = false;
                    LogRecovered();
                }
            }
            catch (Exception e) when (e is NpgsqlException or TimeoutException || (e is OperationCanceledException && !stoppingToken.IsCancellationRequested))
            {
                if (!_failing)
                {
                    _failing = true;
                    LogSyncFailed(e.Message);
                }
            }

            await Task.Delay(_interval, stoppingToken).ConfigureAwait(ConfigureAwaitOptions.SuppressThrowing);
        }
    }

    /// <summary>One sync: the full copy when there is none yet, else the changes since the cursor.</summary>
    public async Task SyncOnceAsync(CancellationToken cancellationToken)
    {
        _origin ??= await OriginAsync(cancellationToken);
        if (directory.Cursor is not { } cursor || directory.Origin != _origin)
        {
            var started = Stopwatch.StartNew();
            await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
            await using var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken);
            var snapshot = await ScalarAsync(connection, SnapshotXmin, cancellationToken);
            var count = await directory.ReplaceAsync(CopyAllAsync(connection, cancellationToken), _origin, snapshot, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
            LogCopied(count, started.Elapsed.TotalSeconds);
            return;
        }

        var removed = new List<long>();
        var current = new List<AdRoute>();
        string next;
        await using (var connection = await dataSource.OpenConnectionAsync(cancellationToken))
        await using (var transaction = await connection.BeginTransactionAsync(System.Data.IsolationLevel.RepeatableRead, cancellationToken))
        {
            next = await ScalarAsync(connection, SnapshotXmin, cancellationToken);
            await using (var tombstones = new NpgsqlCommand($"SELECT ad_id FROM {Tables.AdTombstones} WHERE change_xid >= $1::text::xid8", connection))
            {
                tombstones.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cursor });
                await using var reader = await tombstones.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    removed.Add(reader.GetInt64(0));
                }
            }

            await using (var changed = new NpgsqlCommand(
                $"SELECT ad_id, advertiser_id, redirect_url, deleted_at IS NOT NULL FROM {Tables.Ads} WHERE change_xid >= $1::text::xid8", connection))
            {
                changed.Parameters.Add(new NpgsqlParameter<string> { TypedValue = cursor });
                await using var reader = await changed.ExecuteReaderAsync(cancellationToken);
                while (await reader.ReadAsync(cancellationToken))
                {
                    var adId = reader.GetInt64(0);
                    if (reader.GetBoolean(3))
                    {
                        removed.Add(adId);
                    }
                    else
                    {
                        current.Add(ads.Route(adId, reader.GetInt64(1), reader.GetString(2)));
                    }
                }
            }

            await transaction.CommitAsync(cancellationToken);
        }

        if (next == cursor && removed.Count == 0 && current.Count == 0)
        {
            return;
        }

        directory.Apply(removed, current, next);
        foreach (var adId in removed.Concat(current.Select(r => r.AdId)))
        {
            ads.Forget(adId);
        }
    }

    private async IAsyncEnumerable<AdRoute> CopyAllAsync(NpgsqlConnection connection, [EnumeratorCancellation] CancellationToken cancellationToken)
    {
        await using var export = await connection.BeginBinaryExportAsync(
            $"COPY (SELECT ad_id, advertiser_id, redirect_url FROM {Tables.Ads} WHERE deleted_at IS NULL) TO STDOUT (FORMAT BINARY)", cancellationToken);
        while (await export.StartRowAsync(cancellationToken) != -1)
        {
            var adId = await export.ReadAsync<long>(cancellationToken);
            var advertiserId = await export.ReadAsync<long>(cancellationToken);
            var url = await export.ReadAsync<string>(cancellationToken);
            yield return ads.Route(adId, advertiserId, url);
        }
    }

    private async Task<string> OriginAsync(CancellationToken cancellationToken)
    {
        await using var connection = await dataSource.OpenConnectionAsync(cancellationToken);
        return await ScalarAsync(connection, $"SELECT id::text FROM {Tables.DatabaseIdentity}", cancellationToken);
    }

    private static async Task<string> ScalarAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        return (string)(await command.ExecuteScalarAsync(cancellationToken))!;
    }

    [LoggerMessage(EventId = 1021, Level = LogLevel.Information, Message = "Ad directory: copied {Count} ads from PostgreSQL in {Seconds:F1} s")]
    private partial void LogCopied(long count, double seconds);

    [LoggerMessage(EventId = 1022, Level = LogLevel.Warning, Message = "Ad directory: cannot sync with PostgreSQL ({Error}); clicks are routed from the local copy until it is back")]
    private partial void LogSyncFailed(string error);

    [LoggerMessage(EventId = 1023, Level = LogLevel.Information, Message = "Ad directory: syncing with PostgreSQL again")]
    private partial void LogRecovered();
}

/// <summary>Ingest is ready when it can route clicks: its ad directory holds a copy, or PostgreSQL answers lookups.</summary>
internal sealed class AdDirectoryHealthCheck(LocalAdDirectory directory, NpgsqlDataSource dataSource) : IHealthCheck
{
    public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
        directory.Loaded || await ServiceDefaultsExtensions.PostgresAnswersAsync(dataSource, cancellationToken)
            ? HealthCheckResult.Healthy()
            : HealthCheckResult.Unhealthy("the ad directory has no copy yet and PostgreSQL is unreachable");
}
