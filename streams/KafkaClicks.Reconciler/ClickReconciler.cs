using KafkaClicks.Contracts;
using System.Diagnostics;
using System.Runtime.InteropServices;
using System.Text.Json;
using System.Text.Json.Serialization;
using KafkaClicks.Migrations;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Sink;
using Npgsql;

namespace KafkaClicks.Reconciler;

/// <summary>What to reconcile: a range of click times, all ads or one, and whether to change anything.</summary>
public sealed record ReconcileRequest(DateTime From, DateTime To, long? AdId, bool DryRun);

/// <summary>
/// A run that would correct windows the stream has not closed yet: their counts can still grow, and a corrected minute is
/// left to the reconciler from then on (the sink skips it), so correcting it now would freeze an undercount.
/// </summary>
public sealed class RangeNotFinalException(DateTime to, DateTime finalThrough, TimeSpan grace, DateTime? streamFinalThrough)
    : Exception(Describe(to, finalThrough, grace, streamFinalThrough))
{
    /// <summary>Windows ending at or before this instant are final and may be corrected.</summary>
    public DateTime FinalThrough { get; } = finalThrough;

    private static string Describe(DateTime to, DateTime finalThrough, TimeSpan grace, DateTime? streamFinalThrough) =>
        $"the range ends {to:yyyy-MM-ddTHH:mm:ssZ}, but only windows ending by {finalThrough:yyyy-MM-ddTHH:mm:ssZ} are final "
        + $"(a window closes {grace.TotalSeconds:0.###} s after its end, Aggregator:Grace"
        + (streamFinalThrough is { } s ? $"; the stream has stored final counts through {s:yyyy-MM-ddTHH:mm:ssZ}" : "")
        + "): correcting a window still open would freeze its count, since the sink leaves corrected minutes to the reconciler. "
        + $"End the range by {finalThrough:yyyy-MM-ddTHH:mm:ssZ}, or look with --dry-run";
}

/// <summary>
/// A run that would correct minutes older than the minute retention (<c>Sink:MinuteRetention</c>): their days are dropped,
/// or about to be, so the correction would write only the range's windows into a day of their own and recompute their
/// hours from them, taking the rest of those hours' clicks out of the rollups.
/// </summary>
public sealed class RangeBeyondMinuteRetentionException(DateTime from, DateTime keptFrom, TimeSpan retention)
    : Exception($"the range starts {from:yyyy-MM-ddTHH:mm:ssZ}, but minute counts are kept only from {keptFrom:yyyy-MM-ddTHH:mm:ssZ} "
        + $"(Sink:MinuteRetention {retention}): older minutes are dropped, and correcting part of their hours would take the "
        + $"rest of their clicks out of the rollups. Start the range at or after {keptFrom:yyyy-MM-ddTHH:mm:ssZ}, or look with --dry-run")
{
    /// <summary>The oldest instant whose minutes are kept now.</summary>
    public DateTime KeptFrom { get; } = keptFrom;
}

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
/// <remarks>
/// Runs that correct never lower a count the log supports: each reads the log to its end as of the moment it starts,
/// and they run one at a time across every process sharing the database (a PostgreSQL advisory lock held for the whole
/// run), so a run that starts later has read at least what an earlier one read. They only correct windows that are
/// final (<see cref="FinalThroughAsync"/>); a range reaching further is refused with <see cref="RangeNotFinalException"/>.
/// </remarks>
public sealed class ClickReconciler
{
    /// <summary>The advisory lock (pg_advisory_lock) a correcting run holds: one run at a time per database.</summary>
    public const long LockKey = 0x4B43_5245_434F_4E; // "KCRECON"

    /// <summary>The aggregator's default grace (Aggregator:Grace): a window closes this long after its end.</summary>
    public static readonly TimeSpan DefaultGrace = TimeSpan.FromSeconds(30);

    private const int LargestDifferencesKept = 10;
    private readonly NpgsqlDataSource _dataSource;
    private readonly RawLogCounter _counter;
    private readonly TimeSpan _grace;
    private readonly TimeSpan _minuteRetention;
    private readonly TimeProvider _time;

    /// <param name="dataSource">The database.</param>
    /// <param name="counter">The recount of clicks.raw.</param>
    /// <param name="grace">The aggregator's Aggregator:Grace (default <see cref="DefaultGrace"/>).</param>
    /// <param name="time">The clock that says which windows are closed (default the system's).</param>
    /// <param name="minuteRetention">The sinks' Sink:MinuteRetention (default <see cref="SharedDefaults.MinuteRetention"/>): older minutes are not corrected.</param>
    public ClickReconciler(NpgsqlDataSource dataSource, RawLogCounter counter, TimeSpan? grace = null, TimeProvider? time = null, TimeSpan? minuteRetention = null)
    {
        _dataSource = dataSource;
        _counter = counter;
        _grace = grace ?? DefaultGrace;
        _minuteRetention = minuteRetention ?? SharedDefaults.MinuteRetention;
        _time = time ?? TimeProvider.System;
    }

    /// <summary>
    /// Recounts and (unless a dry run) corrects the range; throws <see cref="RangeNotFinalException"/> when a run that
    /// corrects reaches windows that are not final, and <see cref="RangeBeyondMinuteRetentionException"/> when it starts
    /// before the minutes kept. A correcting run first waits for any other to finish.
    /// </summary>
    public async Task<ReconcileReport> RunAsync(ReconcileRequest request, IProgress<ReadProgress>? progress, CancellationToken cancellationToken)
    {
        if (request.DryRun)
        {
            return await RunLockedAsync(request, null, progress, cancellationToken);
        }

        EnsureRetained(request.From);
        await EnsureFinalAsync(request.To, cancellationToken);
        await using var held = await LockAsync(cancellationToken);
        return await RunLockedAsync(request, null, progress, cancellationToken);
    }

    /// <summary>
    /// A scheduled run (<paramref name="schedule"/> names it: hourly, daily) over all ads: null, changing nothing, when a
    /// run of that schedule over that range already succeeded (another reconciler instance made it first).
    /// </summary>
    public async Task<ReconcileReport?> RunScheduledAsync(string schedule, DateTime from, DateTime to, CancellationToken cancellationToken)
    {
        EnsureRetained(from);
        await EnsureFinalAsync(to, cancellationToken);
        await using var held = await LockAsync(cancellationToken);
        var done = await ScheduledDoneAsync(schedule, from, cancellationToken);
        if (done.Contains((from, to)))
        {
            return null;
        }

        return await RunLockedAsync(new ReconcileRequest(from, to, null, false), schedule, null, cancellationToken);
    }

    /// <summary>The ranges starting at or after <paramref name="since"/> that a run of <paramref name="schedule"/> reconciled (succeeded or partial).</summary>
    public async Task<HashSet<(DateTime From, DateTime To)>> ScheduledDoneAsync(string schedule, DateTime since, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""
            SELECT range_from, range_to FROM {Tables.ReconciliationRuns}
            WHERE schedule = $1 AND range_from >= $2 AND status IN ('succeeded', 'partial')
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = schedule });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = since });
        var done = new HashSet<(DateTime, DateTime)>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            done.Add((DateTime.SpecifyKind(reader.GetDateTime(0), DateTimeKind.Utc), DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc)));
        }

        return done;
    }

    /// <summary>
    /// Windows ending at or before this instant are final and may be corrected: closed by the wall clock (their end plus
    /// the aggregator's grace has passed; rounded down to a whole minute) and, while a sink reports final counts (one did
    /// in the last 10 minutes, as the query API's completeThrough counts it), not past the least final watermark stored
    /// for clicks.minute's partitions, so an aggregator lagging behind the clock holds corrections back too.
    /// </summary>
    public async Task<DateTime> FinalThroughAsync(CancellationToken cancellationToken) => (await FinalityAsync(cancellationToken)).FinalThrough;

    private async Task<(DateTime FinalThrough, DateTime? Stream)> FinalityAsync(CancellationToken cancellationToken)
    {
        var closed = _time.GetUtcNow().UtcDateTime - _grace;
        closed = TimeBuckets.MinuteOf(closed);
        var stream = await StreamProgress.CompleteThroughAsync(_dataSource, cancellationToken);
        return (stream is { } through && through < closed ? through : closed, stream);
    }

    private void EnsureRetained(DateTime from)
    {
        var keptFrom = _time.GetUtcNow().UtcDateTime - _minuteRetention;
        if (from < keptFrom)
        {
            throw new RangeBeyondMinuteRetentionException(from, keptFrom, _minuteRetention);
        }
    }

    private async Task EnsureFinalAsync(DateTime to, CancellationToken cancellationToken)
    {
        var (finalThrough, stream) = await FinalityAsync(cancellationToken);
        if (to > finalThrough)
        {
            throw new RangeNotFinalException(to, finalThrough, _grace, stream);
        }
    }

    /// <summary>Takes <see cref="LockKey"/>, waiting for the run holding it, on a connection of its own kept until disposed.</summary>
    private async Task<RunLock> LockAsync(CancellationToken cancellationToken)
    {
        var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        try
        {
            await using var command = new NpgsqlCommand("SELECT pg_advisory_lock($1)", connection);
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = LockKey });
            await command.ExecuteNonQueryAsync(cancellationToken);
            return new RunLock(connection);
        }
        catch
        {
            await connection.DisposeAsync();
            throw;
        }
    }

    private sealed class RunLock(NpgsqlConnection connection) : IAsyncDisposable
    {
        public async ValueTask DisposeAsync()
        {
            try
            {
                // Pooled connections keep their session (No Reset On Close), so the lock is released explicitly; a
                // broken connection's session ended, and its lock with it.
                await using var command = new NpgsqlCommand("SELECT pg_advisory_unlock($1)", connection);
                command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = LockKey });
                await command.ExecuteNonQueryAsync(CancellationToken.None);
            }
            catch (Exception e) when (e is NpgsqlException or InvalidOperationException)
            {
                // Nothing more to release.
            }
            finally
            {
                await connection.DisposeAsync();
            }
        }
    }

    private async Task<ReconcileReport> RunLockedAsync(ReconcileRequest request, string? schedule, IProgress<ReadProgress>? progress, CancellationToken cancellationToken)
    {
        var started = Stopwatch.StartNew();

        // The database's counts are read while the log is recounted: the two take different resources. The log is read
        // to its end as of now, so every click of the range written so far, however late (a drained spool), is counted.
        // Both come grouped by ad, and are compared and corrected one group at a time: memory holds one group's windows.
        using var recount = await Task.Run(() => _counter.Open(request.From, request.To, request.AdId, toLogEnd: true), cancellationToken);
        var storedTask = StoredWindows.ReadAsync(_dataSource, request, recount.AdGroups, recount.SpillDirectory, cancellationToken);
        try
        {
            await Task.Run(() => recount.Read(progress, cancellationToken), cancellationToken);
        }
        catch
        {
            try
            {
                (await storedTask).Dispose();
            }
            catch (Exception e) when (e is NpgsqlException or OperationCanceledException or IOException)
            {
                // The recount's failure is the one reported.
            }

            throw;
        }

        using var stored = await storedTask;
        var coveredFrom = recount.CoveredFrom is { } c && c > request.From ? (c < request.To ? Ceiling(c) : request.To) : request.From;
        var comparison = new Comparison(coveredFrom);
        var corrections = request.DryRun ? null : new Corrections(_dataSource);
        await using (corrections)
        {
            foreach (var (group, rawWindows) in recount.CountByAdGroup(cancellationToken))
            {
                var storedWindows = stored.Group(group);
                var differences = comparison.Add(rawWindows, storedWindows);
                if (corrections is not null && differences.Count > 0)
                {
                    await corrections.WriteAsync(differences, rawWindows, storedWindows, cancellationToken);
                }
            }

            if (corrections is not null)
            {
                await corrections.RefreshRollupsAsync(cancellationToken);
            }
        }

        var status = coveredFrom > request.From ? "partial" : "succeeded";
        var report = new ReconcileReport(
            null, request.From, request.To, request.AdId, request.DryRun, status, recount.EventsRead,
            comparison.RawClicks,
            comparison.DbClicks,
            comparison.WindowsChecked, request.DryRun ? 0 : comparison.WindowsDiffering,
            coveredFrom > request.From ? request.From : null, coveredFrom > request.From ? coveredFrom : null,
            comparison.Largest,
            Math.Round(started.Elapsed.TotalSeconds, 3),
            recount.UndecodableRecords);
        long? runId = null;
        if (!request.DryRun)
        {
            runId = await StoreAsync(report, schedule, cancellationToken);
        }

        return report with { RunId = runId };
    }

    /// <summary>The latest stored reports, newest first.</summary>
    public async Task<IReadOnlyList<ReconcileReport>> RecentAsync(int count, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"SELECT run_id, report FROM {Tables.ReconciliationRuns} ORDER BY run_id DESC LIMIT $1");
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

    private static DateTime Ceiling(DateTime value) => TimeBuckets.CeilingMinute(value);

    /// <summary>The recount and the database compared window by window (salts summed), one group of ads at a time.</summary>
    private sealed class Comparison(DateTime coveredFrom)
    {
        private readonly Dictionary<(long AdId, DateTime Minute), long> _raw = [];
        private readonly Dictionary<(long AdId, DateTime Minute), long> _stored = [];
        private readonly List<WindowDifference> _differences = [];
        private List<WindowDifference> _largest = [];

        public long RawClicks { get; private set; }
        public long DbClicks { get; private set; }
        public long WindowsChecked { get; private set; }
        public long WindowsDiffering { get; private set; }

        /// <summary>The <see cref="LargestDifferencesKept"/> largest differences, largest first.</summary>
        public IReadOnlyList<WindowDifference> Largest => _largest;

        /// <summary>Compares one group; the differences returned are valid until the next call.</summary>
        public List<WindowDifference> Add(IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> raw,
            IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> stored)
        {
            Totals(raw, _raw);
            Totals(stored, _stored);
            _differences.Clear();
            WindowsChecked += _raw.Count;
            foreach (var (key, rawClicks) in _raw)
            {
                RawClicks += rawClicks;
                var dbClicks = _stored.GetValueOrDefault(key);
                if (rawClicks != dbClicks)
                {
                    _differences.Add(new WindowDifference(key.AdId, key.Minute, rawClicks, dbClicks));
                }
            }

            foreach (var (key, dbClicks) in _stored)
            {
                DbClicks += dbClicks;
                if (!_raw.ContainsKey(key))
                {
                    WindowsChecked++;
                    if (dbClicks != 0)
                    {
                        _differences.Add(new WindowDifference(key.AdId, key.Minute, 0, dbClicks));
                    }
                }
            }

            WindowsDiffering += _differences.Count;
            _largest = _largest.Concat(_differences)
                .OrderByDescending(d => Math.Abs(d.Difference)).ThenBy(d => d.AdId).ThenBy(d => d.Minute)
                .Take(LargestDifferencesKept)
                .ToList();
            return _differences;
        }

        /// <summary>Per-salt counts summed per (ad, minute), from the covered start on.</summary>
        private void Totals(IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> perSalt, Dictionary<(long AdId, DateTime Minute), long> totals)
        {
            totals.Clear();
            foreach (var ((adId, minute, _), clicks) in perSalt)
            {
                if (minute >= coveredFrom)
                {
                    CollectionsMarshal.GetValueRefOrAddDefault(totals, (adId, minute), out _) += clicks;
                }
            }
        }
    }

    /// <summary>
    /// Writes corrections group by group, each in its own transaction with its hours' dirty marks, then refreshes the
    /// rollups of the corrected ads and hours once.
    /// </summary>
    private sealed class Corrections(NpgsqlDataSource dataSource) : IAsyncDisposable
    {
        private readonly HashSet<long> _ads = [];
        private readonly SortedSet<DateTime> _hours = [];
        private NpgsqlConnection? _connection;

        /// <summary>Writes the raw per-salt counts of every differing window (zero for salts only the database had).</summary>
        public async Task WriteAsync(List<WindowDifference> differences, IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> raw,
            IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> stored, CancellationToken cancellationToken)
        {
            var wrong = differences.Select(d => (d.AdId, d.Minute)).ToHashSet();
            var rows = new Dictionary<(long AdId, DateTime Minute, int Salt), long>();
            foreach (var ((adId, minute, salt), _) in stored.Where(s => wrong.Contains((s.Key.AdId, s.Key.Minute))))
            {
                rows[(adId, minute, salt)] = 0;
            }

            foreach (var (key, clicks) in raw.Where(w => wrong.Contains((w.Key.AdId, w.Key.Minute))))
            {
                rows[key] = clicks;
            }

            _connection ??= await dataSource.OpenConnectionAsync(cancellationToken);
            var minutes = rows.Keys.Select(k => k.Minute).ToList();
            await using (var partitions = new NpgsqlCommand("SELECT ensure_ad_clicks_minute_partitions($1, $2)", _connection))
            {
                partitions.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = minutes.Min() });
                partitions.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = minutes.Max().AddMinutes(1) });
                await partitions.ExecuteNonQueryAsync(cancellationToken);
            }

            // The corrected minutes and their rollups' dirty marks commit together: if this process dies before the direct
            // refresh at the end, the sink role's refresh job still brings the rollups in line with the corrected minutes.
            await using (var transaction = await _connection.BeginTransactionAsync(cancellationToken))
            await using (var statements = new NpgsqlBatch(_connection, transaction))
            {
                var upsert = new NpgsqlBatchCommand($"""
                    INSERT INTO {Tables.AdClicksMinute} AS t (ad_id, minute, salt, clicks, final, emitted_at, updated_at, corrected_at)
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
                statements.BatchCommands.Add(Rollups.MarkDirty(rows.Keys.Select(k => (k.AdId, k.Minute))));
                await statements.ExecuteNonQueryAsync(cancellationToken);
                await transaction.CommitAsync(cancellationToken);
            }

            _ads.UnionWith(rows.Keys.Select(k => k.AdId));
            _hours.UnionWith(minutes.Select(TimeBuckets.HourOf));
        }

        /// <summary>Recomputes the rollups of the corrected ads over the corrected hours (contiguous hours merged).</summary>
        public async Task RefreshRollupsAsync(CancellationToken cancellationToken)
        {
            if (_connection is null)
            {
                return;
            }

            var flavor = await DatabaseMigrator.RecordedFlavorAsync(_connection, cancellationToken) ?? StorageFlavor.Plain;
            var adIds = _ads.ToArray();
            foreach (var (from, to) in HourRanges(_hours))
            {
                await Rollups.RefreshAdsAsync(_connection, flavor, adIds, from, to, cancellationToken);
            }
        }

        public async ValueTask DisposeAsync()
        {
            if (_connection is not null)
            {
                await _connection.DisposeAsync();
            }
        }

        /// <summary>Sorted hours, merged into contiguous ranges.</summary>
        private static IEnumerable<(DateTime From, DateTime To)> HourRanges(IEnumerable<DateTime> hours)
        {
            DateTime? start = null, end = null;
            foreach (var hour in hours)
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
    }

    private async Task<long> StoreAsync(ReconcileReport report, string? schedule, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand($"""
            INSERT INTO {Tables.ReconciliationRuns} (range_from, range_to, ad_id, dry_run, raw_clicks, db_clicks, windows_checked, windows_corrected, status, report, started_at, finished_at, schedule)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10::jsonb, now() - $11 * interval '1 second', now(), $12)
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
        command.Parameters.Add(new NpgsqlParameter { Value = (object?)schedule ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Text });
        return (long)(await command.ExecuteScalarAsync(cancellationToken))!;
    }
}
