using System.Globalization;
using System.Diagnostics;
using HdrHistogram;
using KafkaClicks.Contracts;
using KafkaClicks.Migrations;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// The sink's writer: 200,000 ads x 5 minutes inserted, then the same keys again as updates with a newer emission,
/// through <see cref="MinuteCountWriter"/> in batches of the sink's default size; baseline: a raw binary COPY of the
/// same rows into an unindexed table, in the same run on a database of its own. A second baseline bounds the insert
/// pass: the new rows copied into a table with the minute table's indexes.
/// </summary>
public sealed class SinkBenchmark : IBenchmark
{
    private const int Ads = 200_000;
    private const int Minutes = 5;
    private static readonly int BatchSize = new SinkOptions().MaxBatchRecords;

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var name = "kc_bench_sink_" + Guid.NewGuid().ToString("N")[..8];
        await ExecuteAsync(context.PostgresAdmin, $"CREATE DATABASE {name}");
        try
        {
            var connectionString = new NpgsqlConnectionStringBuilder(context.PostgresAdmin) { Database = name }.ConnectionString;
            await using var dataSource = NpgsqlDataSource.Create(connectionString);
            await new DatabaseMigrator(dataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
            var start = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour - 1);
            var inserts = Rows(start, start.AddMinutes(Minutes + 1));
            var updates = Rows(start, start.AddMinutes(Minutes + 2));

            context.Say($"upserting {inserts.Count:N0} new rows then {updates.Count:N0} updates in batches of {BatchSize:N0}");
            // The sink's default: one writer connection per processor (Sink:WriterConnections).
            var connections = int.Parse(Environment.GetEnvironmentVariable("BENCH_WRITER_CONNECTIONS") ?? Environment.ProcessorCount.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);
            var writer = new MinuteCountWriter(dataSource, connections);
            var histogram = new LongHistogram(TimeStamp.Minutes(1), 3);
            var watch = Stopwatch.StartNew();
            var batches = await WriteAsync(writer, inserts, histogram);
            var insertSeconds = watch.Elapsed.TotalSeconds;
            batches += await WriteAsync(writer, updates, histogram);
            var upsertSeconds = watch.Elapsed.TotalSeconds;
            var total = inserts.Count + updates.Count;
            var stored = await ScalarAsync(dataSource, "SELECT count(*) FROM ad_clicks_minute WHERE clicks = 2");
            if (stored != inserts.Count)
            {
                throw new InvalidOperationException($"expected {inserts.Count} updated rows, found {stored}");
            }

            // Updates that stayed on their row's page (HOT) added no index entries. Backends report their counters
            // at most once a second.
            await Task.Delay(TimeSpan.FromSeconds(1.5));
            var hotShare = await FractionAsync(dataSource, """
                SELECT sum(n_tup_hot_upd)::float8 / nullif(sum(n_tup_upd), 0) FROM pg_stat_user_tables WHERE relname LIKE 'ad_clicks_minute%'
                """);

            context.Say("baseline: binary COPY of the same rows into an unindexed table");
            await using (var create = dataSource.CreateCommand(
                "CREATE TABLE copy_baseline (ad_id bigint, minute timestamptz, salt smallint, clicks bigint, final boolean, emitted_at timestamptz)"))
            {
                await create.ExecuteNonQueryAsync();
            }

            watch.Restart();
            await CopyAsync(dataSource, inserts, "copy_baseline");
            await CopyAsync(dataSource, updates, "copy_baseline");
            var copySeconds = watch.Elapsed.TotalSeconds;

            // A second baseline for the insert pass: the fastest way to put new keys into a table with the minute
            // table's primary key and indexes (top ads' (minute, clicks), salted rows'; fillfactor 60), with no
            // conflict handling and no rollup marks at all.
            context.Say("floor of the insert pass: binary COPY of the new rows into a table indexed like the minute table");
            await using (var create = dataSource.CreateCommand("""
                CREATE TABLE copy_indexed (ad_id bigint, minute timestamptz, salt smallint, clicks bigint, final boolean, emitted_at timestamptz,
                    PRIMARY KEY (ad_id, minute, salt)) WITH (fillfactor = 60);
                CREATE INDEX ON copy_indexed (minute, clicks DESC);
                CREATE INDEX ON copy_indexed (minute, ad_id) WHERE salt > 0;
                """))
            {
                await create.ExecuteNonQueryAsync();
            }

            watch.Restart();
            await CopyAsync(dataSource, inserts, "copy_indexed");
            var indexedCopySeconds = watch.Elapsed.TotalSeconds;

            var rowsPerSecond = total / upsertSeconds;
            var baselinePerSecond = total / copySeconds;
            return new Dictionary<string, object>
            {
                ["rows_per_s"] = Math.Round(rowsPerSecond),
                ["baseline_per_s"] = Math.Round(baselinePerSecond),
                ["ratio"] = Math.Round(rowsPerSecond / baselinePerSecond, 3),
                ["insert_rows_per_s"] = Math.Round(inserts.Count / insertSeconds),
                ["indexed_copy_per_s"] = Math.Round(inserts.Count / indexedCopySeconds),
                ["insert_ratio_to_indexed_copy"] = Math.Round(indexedCopySeconds / insertSeconds, 3),
                ["update_rows_per_s"] = Math.Round(updates.Count / (upsertSeconds - insertSeconds)),
                ["hot_update_share"] = Math.Round(hotShare, 3),
                ["writer_connections"] = connections,
                ["p99_batch_ms"] = Math.Round(histogram.GetValueAtPercentile(99) * 1000.0 / TimeStamp.Seconds(1), 1),
                ["p50_batch_ms"] = Math.Round(histogram.GetValueAtPercentile(50) * 1000.0 / TimeStamp.Seconds(1), 1),
                ["batches"] = batches,
                ["batch_size"] = BatchSize,
                ["rows"] = total,
            };
        }
        finally
        {
            NpgsqlConnection.ClearAllPools();
            await ExecuteAsync(context.PostgresAdmin, $"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        }
    }

    /// <summary>Minute-major, as the aggregator emits: every ad's count of one minute, then the next minute.</summary>
    private static List<MinuteCountRecord> Rows(DateTime start, DateTime emittedAt)
    {
        var clicks = emittedAt > start.AddMinutes(Minutes + 1) ? 2 : 1;
        var rows = new List<MinuteCountRecord>(Ads * Minutes);
        for (var m = 0; m < Minutes; m++)
        {
            for (var ad = 1; ad <= Ads; ad++)
            {
                rows.Add(new MinuteCountRecord(new MinuteCount
                {
                    AdId = ad, Salt = 0, WindowStart = start.AddMinutes(m), Clicks = clicks, Final = clicks == 2, EmittedAt = emittedAt,
                }, ad % 8));
            }
        }

        return rows;
    }

    private static async Task<int> WriteAsync(MinuteCountWriter writer, List<MinuteCountRecord> rows, LongHistogram histogram)
    {
        var batches = 0;
        for (var i = 0; i < rows.Count; i += BatchSize)
        {
            var batch = rows.GetRange(i, Math.Min(BatchSize, rows.Count - i));
            var started = Stopwatch.GetTimestamp();
            await writer.WriteAsync(batch, CancellationToken.None);
            histogram.RecordValue(Stopwatch.GetTimestamp() - started);
            batches++;
        }

        return batches;
    }

    private static async Task CopyAsync(NpgsqlDataSource dataSource, List<MinuteCountRecord> rows, string table)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using var copy = await connection.BeginBinaryImportAsync(
            $"COPY {table} (ad_id, minute, salt, clicks, final, emitted_at) FROM STDIN (FORMAT BINARY)");
        foreach (var record in rows)
        {
            var row = record.Count;
            await copy.StartRowAsync();
            await copy.WriteAsync(row.AdId, NpgsqlDbType.Bigint);
            await copy.WriteAsync(row.WindowStart, NpgsqlDbType.TimestampTz);
            await copy.WriteAsync((short)row.Salt, NpgsqlDbType.Smallint);
            await copy.WriteAsync(row.Clicks, NpgsqlDbType.Bigint);
            await copy.WriteAsync(row.Final, NpgsqlDbType.Boolean);
            await copy.WriteAsync(row.EmittedAt, NpgsqlDbType.TimestampTz);
        }

        await copy.CompleteAsync();
    }

    private static async Task<double> FractionAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return await command.ExecuteScalarAsync() is double value ? value : 0;
    }

    private static async Task<long> ScalarAsync(NpgsqlDataSource dataSource, string sql)
    {
        await using var command = dataSource.CreateCommand(sql);
        return (long)(await command.ExecuteScalarAsync())!;
    }

    private static async Task ExecuteAsync(string connectionString, string sql)
    {
        await using var connection = new NpgsqlConnection(connectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync();
    }
}
