using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using KafkaClicks.Migrations;
using KafkaClicks.Sink;
using Npgsql;

namespace KafkaClicks.Reconciler;

/// <summary>
/// What to reconcile: a range of click times. <paramref name="WrittenUntil"/>: read the log up to records written by
/// then, when that is later than the range's end plus the counter's lateness (clicks known to have reached it late).
/// </summary>
public sealed record ReconcileRequest(DateTime From, DateTime To, long? AdId, bool DryRun, DateTime? WrittenUntil = null);

/// <summary>One window whose stored count differed from the raw log.</summary>
public sealed record WindowDifference(long AdId, DateTime Minute, long RawClicks, long DbClicks)
{
    public long Difference => RawClicks - DbClicks;
}

/// <summary>The outcome of a reconciliation, as stored in reconciliation_runs.report and printed by the CLI.</summary>
public sealed record ReconcileReport(
    long? RunId,
    DateTime From,
    DateTime To,
    long? AdId,
    bool DryRun,
    string Status,
    long EventsRead,
    long RawClicks,
    long DbClicks,
    long WindowsChecked,
    long WindowsCorrected,
    DateTime? UncoveredFrom,
    DateTime? UncoveredTo,
    IReadOnlyList<WindowDifference> LargestDifferences,
    double DurationSeconds,
    long UndecodableRecords = 0);

[JsonSerializable(typeof(ReconcileReport))]
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web, WriteIndented = true)]
public sealed partial class ReconcileJsonContext : JsonSerializerContext;

/// <summary>
/// Recounts clicks.raw for a range, compares with ad_clicks_minute (salts summed), and unless it is a dry run
/// writes the recounted per-salt counts for every window that differs (final, idempotent), refreshes the rollups
/// for exactly the hours it changed, and stores a report. A second run over the same range finds nothing.
/// </summary>
public sealed class ClickReconciler
{
    private const int LargestDifferencesKept = 10;
    private readonly NpgsqlDataSource _dataSource;
    private readonly RawLogCounter _counter;

    public ClickReconciler(NpgsqlDataSource dataSource, RawLogCounter counter)
    {
        _dataSource = dataSource;
        _counter = counter;
    }

    public async Task<ReconcileReport> RunAsync(ReconcileRequest request, IProgress<ReadProgress>? progress, CancellationToken cancellationToken)
    {
        var started = Stopwatch.StartNew();

        // The database's counts are read while the log is recounted: the two take different resources.
        var storedTask = StoredAsync(request, cancellationToken);
        var raw = await Task.Run(() => _counter.Count(request.From, request.To, request.AdId, progress, cancellationToken, request.WrittenUntil), cancellationToken);
        var stored = await storedTask;
        var coveredFrom = raw.CoveredFrom is { } c && c > request.From ? (c < request.To ? Ceiling(c) : request.To) : request.From;

        var rawTotals = Totals(raw.Windows, coveredFrom);
        var dbTotals = Totals(stored, coveredFrom);
        var differences = new List<WindowDifference>();
        var checkedWindows = rawTotals.Count;
        foreach (var (key, rawClicks) in rawTotals)
        {
            var dbClicks = dbTotals.GetValueOrDefault(key);
            if (rawClicks != dbClicks)
            {
                differences.Add(new WindowDifference(key.AdId, key.Minute, rawClicks, dbClicks));
            }
        }

        foreach (var (key, dbClicks) in dbTotals)
        {
            if (!rawTotals.ContainsKey(key))
            {
                checkedWindows++;
                if (dbClicks != 0)
                {
                    differences.Add(new WindowDifference(key.AdId, key.Minute, 0, dbClicks));
                }
            }
        }

        long? runId = null;
        if (!request.DryRun && differences.Count > 0)
        {
            await CorrectAsync(differences, raw, stored, cancellationToken);
        }

        var status = coveredFrom > request.From ? "partial" : "succeeded";
        var report = new ReconcileReport(
            null, request.From, request.To, request.AdId, request.DryRun, status, raw.EventsRead,
            rawTotals.Values.Sum(),
            dbTotals.Values.Sum(),
            checkedWindows, request.DryRun ? 0 : differences.Count,
            coveredFrom > request.From ? request.From : null, coveredFrom > request.From ? coveredFrom : null,
            differences.OrderByDescending(d => Math.Abs(d.Difference)).ThenBy(d => d.AdId).ThenBy(d => d.Minute).Take(LargestDifferencesKept).ToList(),
            Math.Round(started.Elapsed.TotalSeconds, 3),
            raw.UndecodableRecords);
        if (!request.DryRun)
        {
            runId = await StoreAsync(report, cancellationToken);
        }

        return report with { RunId = runId };
    }

    /// <summary>The latest stored reports, newest first.</summary>
    public async Task<IReadOnlyList<ReconcileReport>> RecentAsync(int count, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT run_id, report FROM reconciliation_runs ORDER BY run_id DESC LIMIT $1");
        command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = count });
        var reports = new List<ReconcileReport>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            var report = JsonSerializer.Deserialize(reader.GetString(1), ReconcileJsonContext.Default.ReconcileReport);
            if (report is not null)
            {
                reports.Add(report with { RunId = reader.GetInt64(0) });
            }
        }

        return reports;
    }

    /// <summary>Per-salt counts summed per (ad, minute), from <paramref name="coveredFrom"/> on.</summary>
    private static Dictionary<(long AdId, DateTime Minute), long> Totals(Dictionary<(long AdId, DateTime Minute, int Salt), long> perSalt, DateTime coveredFrom)
    {
        var totals = new Dictionary<(long, DateTime), long>(perSalt.Count);
        foreach (var ((adId, minute, _), clicks) in perSalt)
        {
            if (minute >= coveredFrom)
            {
                CollectionsMarshal.GetValueRefOrAddDefault(totals, (adId, minute), out _) += clicks;
            }
        }

        return totals;
    }

    private static DateTime Ceiling(DateTime value) =>
        value.Ticks % TimeSpan.TicksPerMinute == 0 ? value : new DateTime(value.Ticks - (value.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc).AddMinutes(1);

    private async Task<Dictionary<(long AdId, DateTime Minute, int Salt), long>> StoredAsync(ReconcileRequest request, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            SELECT ad_id, minute, salt, clicks FROM ad_clicks_minute
            WHERE minute >= $1 AND minute < $2 AND ($3::bigint IS NULL OR ad_id = $3)
            """);
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = request.From });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = request.To });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)request.AdId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        var stored = new Dictionary<(long, DateTime, int), long>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            stored[(reader.GetInt64(0), DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc), reader.GetInt16(2))] = reader.GetInt64(3);
        }

        return stored;
    }

    /// <summary>Writes the raw per-salt counts of every differing window (zero for salts only the database had).</summary>
    private async Task CorrectAsync(List<WindowDifference> differences, RawCounts raw, Dictionary<(long AdId, DateTime Minute, int Salt), long> stored, CancellationToken cancellationToken)
    {
        var wrong = differences.Select(d => (d.AdId, d.Minute)).ToHashSet();
        var rows = new Dictionary<(long AdId, DateTime Minute, int Salt), long>();
        foreach (var ((adId, minute, salt), _) in stored.Where(s => wrong.Contains((s.Key.AdId, s.Key.Minute))))
        {
            rows[(adId, minute, salt)] = 0;
        }

        foreach (var (key, clicks) in raw.Windows.Where(w => wrong.Contains((w.Key.AdId, w.Key.Minute))))
        {
            rows[key] = clicks;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        var minutes = rows.Keys.Select(k => k.Minute).ToList();
        await using (var partitions = new NpgsqlCommand("SELECT ensure_ad_clicks_minute_partitions($1, $2)", connection))
        {
            partitions.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = minutes.Min() });
            partitions.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = minutes.Max().AddMinutes(1) });
            await partitions.ExecuteNonQueryAsync(cancellationToken);
        }

        // The corrected minutes and their hours' dirty marks commit together: if this process dies before the direct
        // refresh below, the sink role's refresh job still brings the rollups in line with the corrected minutes.
        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        await using (var statements = new NpgsqlBatch(connection, transaction))
        {
            var upsert = new NpgsqlBatchCommand("""
                INSERT INTO ad_clicks_minute AS t (ad_id, minute, salt, clicks, final, emitted_at, updated_at, corrected_at)
                SELECT a, m, s, c, true, now(), now(), now() FROM unnest($1::bigint[], $2::timestamptz[], $3::smallint[], $4::bigint[]) AS r(a, m, s, c)
                ON CONFLICT (ad_id, minute, salt) DO UPDATE
                SET clicks = EXCLUDED.clicks, final = true, emitted_at = GREATEST(t.emitted_at, EXCLUDED.emitted_at), updated_at = now(),
                    corrected_at = now()
                """);
            upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = rows.Keys.Select(k => k.AdId).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = rows.Keys.Select(k => k.Minute).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<short[]> { TypedValue = rows.Keys.Select(k => (short)k.Salt).ToArray() });
            upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = rows.Values.ToArray() });
            statements.BatchCommands.Add(upsert);
            statements.BatchCommands.Add(Rollups.MarkDirty(minutes));
            await statements.ExecuteNonQueryAsync(cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        var flavor = await DatabaseMigrator.RecordedFlavorAsync(connection, cancellationToken) ?? StorageFlavor.Plain;
        var adIds = rows.Keys.Select(k => k.AdId).Distinct().ToArray();
        foreach (var (from, to) in HourRanges(minutes))
        {
            await Rollups.RefreshAdsAsync(connection, flavor, adIds, from, to, cancellationToken);
        }
    }

    /// <summary>The changed hours, merged into contiguous ranges.</summary>
    private static IEnumerable<(DateTime From, DateTime To)> HourRanges(IEnumerable<DateTime> minutes)
    {
        DateTime? start = null, end = null;
        foreach (var hour in minutes.Select(m => new DateTime(m.Ticks - (m.Ticks % TimeSpan.TicksPerHour), DateTimeKind.Utc)).Distinct().Order())
        {
            if (end == hour)
            {
                end = hour.AddHours(1);
                continue;
            }

            if (start is not null)
            {
                yield return (start.Value, end!.Value);
            }

            start = hour;
            end = hour.AddHours(1);
        }

        if (start is not null)
        {
            yield return (start.Value, end!.Value);
        }
    }

    private async Task<long> StoreAsync(ReconcileReport report, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            INSERT INTO reconciliation_runs (range_from, range_to, ad_id, dry_run, raw_clicks, db_clicks, windows_checked, windows_corrected, status, report, started_at, finished_at)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, now() - $11 * interval '1 second', now())
            RETURNING run_id
            """);
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = report.From });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = report.To });
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)report.AdId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
        command.Parameters.Add(new NpgsqlParameter<bool> { TypedValue = report.DryRun });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = report.RawClicks });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = report.DbClicks });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = report.WindowsChecked });
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = report.WindowsCorrected });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = report.Status });
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = JsonSerializer.Serialize(report, ReconcileJsonContext.Default.ReconcileReport) });
        command.Parameters.Add(new NpgsqlParameter<double> { TypedValue = report.DurationSeconds });
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
