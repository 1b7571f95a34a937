using System.Diagnostics;
using System.Globalization;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using Npgsql;
using NpgsqlTypes;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// Recounts 1,000,000 raw clicks on the embedded broker and diffs them against a database holding the right
/// counts except for 1% of the windows (one click too many), which it corrects. Baseline in the same run: a plain
/// consumer reading and decoding the same topic.
/// </summary>
public sealed class ReconcileBenchmark : IBenchmark
{
    private const int Partitions = 64;
    private static readonly DateTime Start = DateTime.UtcNow.Date.AddHours(-3);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var clicks = int.Parse(Environment.GetEnvironmentVariable("BENCH_CLICKS") ?? "1000000", CultureInfo.InvariantCulture);
        var ads = int.Parse(Environment.GetEnvironmentVariable("BENCH_ADS") ?? "100000", CultureInfo.InvariantCulture);
        var configuration = KafkaClicksHost.LoadConfiguration(new Dictionary<string, string?>
        {
            ["Kafka:BootstrapServers"] = "",
            ["Kafka:ClicksRawPartitions"] = Partitions.ToString(CultureInfo.InvariantCulture),
        });
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.Reconciler);
        context.Say($"producing {clicks:N0} clicks over {ads:N0} ads");
        var expected = RawClickLoad.Produce(broker.BootstrapServers, Partitions, clicks, ads, Start);
        RawClickLoad.EnsureNothingTruncated(broker.BootstrapServers, Partitions);

        var connectionString = await context.CreateDatabaseAsync("kc_bench_reconcile");
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        var perturbed = await StoreAsync(dataSource, expected);
        context.Say($"{expected.Windows:N0} windows stored, {perturbed:N0} of them wrong; baseline consumer first");

        var baseline = Stopwatch.StartNew();
        var read = RawClickLoad.ReadAll(broker.BootstrapServers, Partitions);
        baseline.Stop();

        var reconciler = new ClickReconciler(dataSource, new RawLogCounter(KafkaClientFactory.For(broker.BootstrapServers), TimeSpan.FromMinutes(5)));
        var request = new ReconcileRequest(Start, Start.AddMinutes(21), null, false);
        var timer = Stopwatch.StartNew();
        var report = await reconciler.RunAsync(request, null, default);
        timer.Stop();
        var again = await reconciler.RunAsync(request, null, default);
        context.Say($"recounted {report.EventsRead:N0} events in {timer.Elapsed.TotalSeconds:F1} s, corrected {report.WindowsCorrected:N0}");

        await dataSource.DisposeAsync();
        await context.DropDatabaseAsync(connectionString);
        var eventsPerS = report.EventsRead / timer.Elapsed.TotalSeconds;
        var baselinePerS = read / baseline.Elapsed.TotalSeconds;
        return new Dictionary<string, object>
        {
            ["benchmark"] = "reconcile",
            ["events"] = report.EventsRead,
            ["events_per_s"] = Math.Round(eventsPerS),
            ["baseline_per_s"] = Math.Round(baselinePerS),
            ["ratio"] = Math.Round(eventsPerS / baselinePerS, 3),
            ["windows"] = report.WindowsChecked,
            ["corrections"] = report.WindowsCorrected,
            ["duration_s"] = Math.Round(timer.Elapsed.TotalSeconds, 2),
            ["correct"] = report.WindowsCorrected == perturbed && again.WindowsCorrected == 0 && report.RawClicks == expected.DistinctImpressions,
        };
    }

    /// <summary>Stores every window's right per-salt count, one click too many in every hundredth; returns how many are wrong.</summary>
    private static async Task<long> StoreAsync(NpgsqlDataSource dataSource, LoadExpectation expected)
    {
        await using var connection = await dataSource.OpenConnectionAsync();
        await using (var partitions = new NpgsqlCommand("SELECT ensure_ad_clicks_minute_partitions($1, $2)", connection))
        {
            partitions.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = Start });
            partitions.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = Start.AddDays(1) });
            await partitions.ExecuteNonQueryAsync();
        }

        var wrong = new HashSet<(long, DateTime)>();
        var index = 0;
        await using var copy = await connection.BeginBinaryImportAsync(
            "COPY ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at) FROM STDIN (FORMAT BINARY)");
        foreach (var ((adId, salt, minute), clicks) in expected.PerWindow)
        {
            var off = index++ % 100 == 0;
            if (off)
            {
                wrong.Add((adId, minute));
            }

            await copy.StartRowAsync();
            await copy.WriteAsync(adId, NpgsqlDbType.Bigint);
            await copy.WriteAsync(minute, NpgsqlDbType.TimestampTz);
            await copy.WriteAsync((short)salt, NpgsqlDbType.Smallint);
            await copy.WriteAsync(clicks + (off ? 1 : 0), NpgsqlDbType.Bigint);
            await copy.WriteAsync(true, NpgsqlDbType.Boolean);
            await copy.WriteAsync(minute.AddMinutes(2), NpgsqlDbType.TimestampTz);
        }

        await copy.CompleteAsync();
        return wrong.Count;
    }

}
