using KafkaClicks.Contracts;
using Npgsql;
using NpgsqlTypes;

namespace KafkaClicks.Sink;

/// <summary>A minute count read from clicks.minute, with the partition it came from.</summary>
public readonly record struct MinuteCountRecord(MinuteCount Count, int Partition);

/// <summary>An aggregator task's progress marker read from clicks.minute, with the partition it came from.</summary>
public readonly record struct FinalProgressRecord(FinalProgress Progress, int Partition);

/// <summary>
/// Writes a batch of minute counts in one transaction: the rows, the rollup marks of the hours they changed, and the
/// aggregator's progress markers read with them. Rows this writer never stored for a recent minute go by binary COPY
/// (<see cref="RecentMinuteKeys"/>), the others by an INSERT ... ON CONFLICT of arrays that stores absolute counts; a COPY
/// that meets a stored row rolls back and the whole slice is upserted. An emission older than the stored one changes
/// nothing, a final flag is never taken back, a row the reconciler corrected (corrected_at) is left to the reconciler,
/// and replaying a batch is a no-op.
/// </summary>
public sealed class MinuteCountWriter
{
    private static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);
    private readonly NpgsqlDataSource _dataSource;
    private readonly int _connections;
    private readonly HashSet<DateOnly> _daysWithPartitions = [];
    private readonly RecentMinuteKeys _recent = new();

    /// <param name="dataSource">The database.</param>
    /// <param name="connections">
    /// Connections a batch is written over at once, each upserting the rows of a disjoint set of ads in its own
    /// transaction (<see cref="SinkOptions.WriterConnections"/>). With more than one, the progress markers are written
    /// after every slice committed, so they never claim a final count that is not in the database.
    /// </param>
    public MinuteCountWriter(NpgsqlDataSource dataSource, int connections = 1)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(connections, 1);
        _dataSource = dataSource;
        _connections = connections;
    }

    /// <summary>
    /// Writes the batch; returns the number of distinct (ad, minute, salt) rows sent. In the same transaction it
    /// marks the rollups of each (ad, hour) the batch touched dirty for <see cref="RollupRefreshJob"/>
    /// (<see cref="Rollups.MarkDirty"/>), and records the
    /// progress markers read with the batch (each read after the counts it covers), never before the rows.
    /// </summary>
    public async Task<int> WriteAsync(IReadOnlyList<MinuteCountRecord> batch, CancellationToken cancellationToken,
        IReadOnlyList<FinalProgressRecord>? progress = null)
    {
        progress ??= [];
        var rows = Latest(batch);
        try
        {
            await EnsurePartitionsAsync(rows, cancellationToken);
            var slices = Slices(rows);
            if (slices.Count == 1)
            {
                await WriteSliceAsync(slices[0], progress, cancellationToken);
            }
            else
            {
                await Task.WhenAll(slices.Select(slice => WriteSliceAsync(slice, [], cancellationToken)));
                await WriteProgressAsync(progress, cancellationToken);
            }
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.CheckViolation)
        {
            // "no partition of relation found for row": a partition this writer created was dropped by retention
            // meanwhile; forget what it knows so the retry creates it again.
            lock (_daysWithPartitions)
            {
                _daysWithPartitions.Clear();
            }

            throw;
        }

        RecordFreshness(batch, DateTime.UtcNow);
        return rows.Count;
    }

    /// <summary>
    /// The rows split into slices, each written in a transaction of its own on a connection of its own: the rows taken
    /// for new (<see cref="RecentMinuteKeys"/>) in one slice, by one COPY (which two connections on the same cores only
    /// slow down), and the others split by ad over the remaining connections. Small batches, and single-connection
    /// writers, take one slice. Slices never share a key.
    /// </summary>
    private List<Slice> Slices(List<MinuteCount> rows)
    {
        var (fresh, stored) = _recent.Split(rows);
        if (_connections == 1 || rows.Count < 2 * MinSliceRows)
        {
            return [new Slice(fresh, stored)];
        }

        var slices = new List<Slice>();
        var connections = _connections;
        if (fresh.Count > 0)
        {
            slices.Add(new Slice(fresh, []));
            connections--;
        }

        var count = Math.Min(connections, Math.Max(1, stored.Count / MinSliceRows));
        var byAd = Enumerable.Range(0, count).Select(_ => new List<MinuteCount>((stored.Count / count) + 16)).ToList();
        foreach (var row in stored)
        {
            byAd[(int)((ulong)row.AdId % (ulong)count)].Add(row);
        }

        slices.AddRange(byAd.Where(ads => ads.Count > 0).Select(ads => new Slice([], ads)));
        return slices;
    }

    /// <summary>Rows of one transaction: those taken for new, sent by COPY, and the others, upserted.</summary>
    private readonly record struct Slice(List<MinuteCount> Fresh, List<MinuteCount> Stored);

    /// <summary>Slices smaller than this are not worth a connection of their own.</summary>
    private const int MinSliceRows = 1_000;

    /// <summary>
    /// Writes a slice and <paramref name="progress"/> in one transaction. Rows this writer has not stored before for a
    /// recent minute (<see cref="RecentMinuteKeys"/>) are almost always new: they go by binary COPY, which costs about
    /// half of an upsert per row; the rest by the upsert. Where the COPY meets a row that is there after all (stored
    /// by another writer, or by this one before a restart), it fails on the primary key, the transaction rolls back,
    /// and every row of the slice goes by the upsert.
    /// </summary>
    private async Task WriteSliceAsync(Slice slice, IReadOnlyList<FinalProgressRecord> progress, CancellationToken cancellationToken)
    {
        var (fresh, stored) = slice;
        List<MinuteCount> rows = fresh.Count == 0 ? stored : stored.Count == 0 ? fresh : [.. fresh, .. stored];
        if (rows.Count == 0)
        {
            await WriteProgressAsync(progress, cancellationToken);
            return;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        if (fresh.Count == 0)
        {
            await UpsertAsync(connection, null, rows, rows, progress, cancellationToken);
            _recent.Remember(rows);
            return;
        }

        await using (var transaction = await connection.BeginTransactionAsync(cancellationToken))
        {
            try
            {
                await CopyAsync(connection, fresh, cancellationToken);
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UniqueViolation)
            {
                await transaction.RollbackAsync(cancellationToken);
                _recent.Distrust(fresh);
                SinkMetrics.CopyFallbacks.Add(1);
                await UpsertAsync(connection, null, rows, rows, progress, cancellationToken);
                _recent.Remember(rows);
                return;
            }

            await UpsertAsync(connection, transaction, stored, rows, progress, cancellationToken);
            await transaction.CommitAsync(cancellationToken);
        }

        _recent.Remember(rows);
    }

    /// <summary>New rows by binary COPY: updated_at and corrected_at take their defaults, as in the upsert's insert.</summary>
    private static async Task CopyAsync(NpgsqlConnection connection, List<MinuteCount> rows, CancellationToken cancellationToken)
    {
        await using var import = await connection.BeginBinaryImportAsync(
            $"COPY {Tables.AdClicksMinute} (ad_id, minute, salt, clicks, final, emitted_at) FROM STDIN (FORMAT BINARY)", cancellationToken);
        foreach (var row in rows)
        {
            await import.StartRowAsync(cancellationToken);
            await import.WriteAsync(row.AdId, NpgsqlDbType.Bigint, cancellationToken);
            await import.WriteAsync(Utc(row.WindowStart), NpgsqlDbType.TimestampTz, cancellationToken);
            await import.WriteAsync((short)row.Salt, NpgsqlDbType.Smallint, cancellationToken);
            await import.WriteAsync(row.Clicks, NpgsqlDbType.Bigint, cancellationToken);
            await import.WriteAsync(row.Final, NpgsqlDbType.Boolean, cancellationToken);
            await import.WriteAsync(Utc(row.EmittedAt), NpgsqlDbType.TimestampTz, cancellationToken);
        }

        await import.CompleteAsync(cancellationToken);
    }

    /// <summary>
    /// Upserts <paramref name="rows"/> (none: only the rest), marks the rollups of every row of <paramref name="marked"/>
    /// dirty and records <paramref name="progress"/>, in one round trip: in <paramref name="transaction"/>, or else in the
    /// batch's implicit transaction (one Sync for all of them), so they commit together or not at all. The rows go as six
    /// arrays in one statement, unnested: no staging table to fill and empty in every transaction.
    /// </summary>
    private static async Task UpsertAsync(NpgsqlConnection connection, NpgsqlTransaction? transaction, List<MinuteCount> rows,
        List<MinuteCount> marked, IReadOnlyList<FinalProgressRecord> progress, CancellationToken cancellationToken)
    {
        await using var statements = new NpgsqlBatch(connection, transaction);
        if (rows.Count > 0)
        {
            statements.BatchCommands.Add(Upsert(rows));
        }

        // Marked from the batch rather than from the upsert's RETURNING, which cost about a fifth of the batch; a mark
        // from a stale emission only costs one extra refresh.
        statements.BatchCommands.Add(Rollups.MarkDirty(marked.Select(row => (row.AdId, Utc(row.WindowStart)))));
        AddProgress(statements, progress);
        await statements.ExecuteNonQueryAsync(cancellationToken);
    }

    private static NpgsqlBatchCommand Upsert(List<MinuteCount> rows)
    {
        var upsert = new NpgsqlBatchCommand($"""
            INSERT INTO {Tables.AdClicksMinute} AS t (ad_id, minute, salt, clicks, final, emitted_at, updated_at)
            SELECT ad_id, minute, salt, clicks, final, emitted_at, now()
            FROM unnest($1::bigint[], $2::timestamptz[], $3::smallint[], $4::bigint[], $5::boolean[], $6::timestamptz[])
                AS u (ad_id, minute, salt, clicks, final, emitted_at)
            ON CONFLICT (ad_id, minute, salt) DO UPDATE
            SET clicks = EXCLUDED.clicks, final = t.final OR EXCLUDED.final, emitted_at = EXCLUDED.emitted_at, updated_at = now()
            WHERE EXCLUDED.emitted_at >= t.emitted_at AND t.corrected_at IS NULL
            """);
        var (adIds, minutes, salts, clicks, finals, emittedAts) = (new long[rows.Count], new DateTime[rows.Count], new short[rows.Count],
            new long[rows.Count], new bool[rows.Count], new DateTime[rows.Count]);
        for (var i = 0; i < rows.Count; i++)
        {
            var row = rows[i];
            (adIds[i], minutes[i], salts[i], clicks[i], finals[i], emittedAts[i]) =
                (row.AdId, Utc(row.WindowStart), (short)row.Salt, row.Clicks, row.Final, Utc(row.EmittedAt));
        }

        upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = adIds });
        upsert.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = minutes });
        upsert.Parameters.Add(new NpgsqlParameter<short[]> { TypedValue = salts });
        upsert.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = clicks });
        upsert.Parameters.Add(new NpgsqlParameter<bool[]> { TypedValue = finals });
        upsert.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = emittedAts });
        return upsert;
    }

    private async Task WriteProgressAsync(IReadOnlyList<FinalProgressRecord> progress, CancellationToken cancellationToken)
    {
        await using var statements = new NpgsqlBatch();
        AddProgress(statements, progress);
        if (statements.BatchCommands.Count == 0)
        {
            return;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        statements.Connection = connection;
        await statements.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// One freshness value per count in the batch that adds clicks, including counts a newer emission in the same
    /// batch superseded (their clicks became queryable with this commit too).
    /// </summary>
    private static void RecordFreshness(IReadOnlyList<MinuteCountRecord> batch, DateTime committedAt)
    {
        if (!SinkMetrics.Freshness.Enabled)
        {
            return;
        }

        var final = new KeyValuePair<string, object?>("final", true);
        var partial = new KeyValuePair<string, object?>("final", false);
        foreach (var record in batch)
        {
            // A click counted in a window was made in it; a time outside it is not a click time and is not measured.
            if (record.Count.EarliestNewClickAt is { } at && Utc(at) is var earliest
                && earliest >= Utc(record.Count.WindowStart) && earliest < Utc(record.Count.WindowStart) + Minute)
            {
                SinkMetrics.Freshness.Record(Math.Max(0, (committedAt - earliest).TotalSeconds), record.Count.Final ? final : partial);
            }
        }
    }

    private static List<MinuteCount> Latest(IReadOnlyList<MinuteCountRecord> batch)
    {
        var latest = new Dictionary<(long, DateTime, int), MinuteCount>(batch.Count);
        foreach (var record in batch)
        {
            var c = record.Count;
            var key = (c.AdId, c.WindowStart, c.Salt);
            if (!latest.TryGetValue(key, out var existing) || c.EmittedAt > existing.EmittedAt
                || (c.EmittedAt == existing.EmittedAt && c.Final && !existing.Final))
            {
                latest[key] = c;
            }
        }

        return [.. latest.Values];
    }

    private async Task EnsurePartitionsAsync(List<MinuteCount> rows, CancellationToken cancellationToken)
    {
        List<DateOnly> missing;
        lock (_daysWithPartitions)
        {
            missing = rows.Select(r => DateOnly.FromDateTime(Utc(r.WindowStart))).Distinct().Where(d => !_daysWithPartitions.Contains(d)).ToList();
        }

        if (missing.Count == 0)
        {
            return;
        }

        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await using var command = new NpgsqlCommand("SELECT ensure_ad_clicks_minute_partitions($1, $2)", connection);
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = missing.Min().ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc) });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = missing.Max().AddDays(1).ToDateTime(TimeOnly.MinValue, DateTimeKind.Utc) });
        await command.ExecuteNonQueryAsync(cancellationToken);
        lock (_daysWithPartitions)
        {
            _daysWithPartitions.UnionWith(missing);
        }
    }

    /// <summary>
    /// Upserts the latest marker per (task, partition), never moving one back. The partition is the one the marker was
    /// read from: its position there, behind the finals it covers, is what it vouches for.
    /// </summary>
    private static void AddProgress(NpgsqlBatch statements, IReadOnlyList<FinalProgressRecord> progress)
    {
        if (progress.Count == 0)
        {
            return;
        }

        var latest = progress
            .GroupBy(p => (p.Progress.Task, p.Partition))
            .Select(g => g.MaxBy(p => p.Progress.FinalThrough))
            .ToList();
        var command = new NpgsqlBatchCommand($"""
            INSERT INTO {Tables.StreamProgress} AS p (topic, task, partition, tasks, partitions, final_through, updated_at)
            SELECT $1, unnest($2::int[]), unnest($3::int[]), unnest($4::int[]), unnest($5::int[]), unnest($6::timestamptz[]), now()
            ON CONFLICT (topic, task, partition) DO UPDATE
            SET final_through = GREATEST(p.final_through, EXCLUDED.final_through), tasks = EXCLUDED.tasks,
                partitions = EXCLUDED.partitions, updated_at = now()
            """);
        command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = Topics.ClicksMinute });
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = latest.Select(p => p.Progress.Task).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = latest.Select(p => p.Partition).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = latest.Select(p => p.Progress.Tasks).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<int[]> { TypedValue = latest.Select(p => p.Progress.Partitions).ToArray() });
        command.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = latest.Select(p => Utc(p.Progress.FinalThrough)).ToArray() });
        statements.BatchCommands.Add(command);
    }

    private static DateTime Utc(DateTime value) => value.Kind == DateTimeKind.Utc ? value : DateTime.SpecifyKind(value, DateTimeKind.Utc);
}
