using System.Diagnostics;
using System.Globalization;
using System.Text.Json;
using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using Npgsql;
using NpgsqlTypes;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// Recounts raw clicks and diffs them against a database holding the right counts except for 1% of the windows (one
/// click too many): 1,000,000 clicks on the embedded broker, then 1,000,000 and 10,000,000 on the Kafka cluster named by
/// BENCH_KAFKA (the embedded broker keeps 5 MiB per partition), each over the same ads and 20 minutes. Every recount runs in
/// a fresh process (<see cref="RunChildAsync"/>, a dry run: it compares and reports, writing nothing) and reports its
/// peak RSS (VmHWM of /proc/self/status). Baselines in the same run: the same recount with every impression in one
/// in-memory set (the algorithm before bounded memory: Reconciler:ImpressionsInMemory above the records read), and a
/// plain consumer reading and decoding the same topic.
/// </summary>
public sealed class ReconcileBenchmark : IBenchmark
{
    private const int Partitions = 64;
    private static readonly DateTime Start = DateTime.UtcNow.Date.AddHours(-3);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var ads = int.Parse(Environment.GetEnvironmentVariable("BENCH_ADS") ?? "100000", CultureInfo.InvariantCulture);
        var cluster = Environment.GetEnvironmentVariable("BENCH_KAFKA") is { Length: > 0 } servers
            ? servers
            : throw new InvalidOperationException("BENCH_KAFKA must name the Kafka cluster for the 10,000,000-click run (benchmarks/reconcile.sh starts one)");
        var result = new Dictionary<string, object> { ["benchmark"] = "reconcile" };
        var embedded = await MeasureAsync(context, "", 1_000_000, ads);
        var small = await MeasureAsync(context, cluster, 1_000_000, ads);
        var large = await MeasureAsync(context, cluster, 10_000_000, ads);
        result["runs"] = new[] { embedded.Figures, small.Figures, large.Figures };
        // Peak RSS compared on the same broker: librdkafka buffers differ between the embedded broker and the cluster.
        result["rss_ratio_10m_to_1m"] = Math.Round((double)large.PeakRssKb / small.PeakRssKb, 3);
        result["baseline_rss_ratio_10m_to_1m"] = Math.Round((double)large.BaselinePeakRssKb / small.BaselinePeakRssKb, 3);
        result["correct"] = embedded.Correct && small.Correct && large.Correct;
        return result;
    }

    private sealed record Measured(Dictionary<string, object> Figures, long PeakRssKb, long BaselinePeakRssKb, bool Correct);

    private static async Task<Measured> MeasureAsync(BenchmarkContext context, string bootstrapServers, int clicks, int ads)
    {
        var configuration = KafkaClicksHost.LoadConfiguration(new Dictionary<string, string?>
        {
            ["Kafka:BootstrapServers"] = bootstrapServers,
            ["Kafka:ClicksRawPartitions"] = Partitions.ToString(CultureInfo.InvariantCulture),
        });
        if (bootstrapServers.Length > 0)
        {
            // A fresh clicks.raw on the cluster for every run.
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = bootstrapServers }).Build();
            if (admin.GetMetadata(TimeSpan.FromSeconds(10)).Topics.Any(t => t.Topic == Topics.ClicksRaw))
            {
                await admin.DeleteTopicsAsync([Topics.ClicksRaw]);
                await Task.Delay(TimeSpan.FromSeconds(2));
            }
        }

        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.Reconciler);
        var where = bootstrapServers.Length == 0 ? "embedded broker" : "Kafka cluster";
        context.Say($"producing {clicks:N0} clicks over {ads:N0} ads on the {where}");
        var expected = RawClickLoad.Produce(broker.BootstrapServers, Partitions, clicks, ads, Start);
        RawClickLoad.EnsureNothingTruncated(broker.BootstrapServers, Partitions);

        var connectionString = await context.CreateDatabaseAsync("kc_bench_reconcile");
        (long Windows, long Clicks) perturbed;
        await using (var dataSource = NpgsqlDataSource.Create(connectionString))
        {
            perturbed = await StoreAsync(dataSource, expected);
        }

        context.Say($"{expected.Windows:N0} windows stored, {perturbed.Windows:N0} of them wrong; plain consumer first");
        var baseline = Stopwatch.StartNew();
        var read = RawClickLoad.ReadAll(broker.BootstrapServers, Partitions);
        baseline.Stop();
        var inMemory = await RecountInChildAsync(context, broker.BootstrapServers, connectionString, int.MaxValue);
        var bounded = await RecountInChildAsync(context, broker.BootstrapServers, connectionString, null);
        await context.DropDatabaseAsync(connectionString);

        bool Right(ChildRun run) => run.RawClicks == expected.DistinctImpressions && run.DbClicks - run.RawClicks == perturbed.Clicks;
        var correct = Right(bounded) && Right(inMemory);
        var baselinePerS = read / baseline.Elapsed.TotalSeconds;
        return new Measured(new Dictionary<string, object>
        {
            ["broker"] = bootstrapServers.Length == 0 ? "embedded" : "cluster",
            ["events"] = bounded.EventsRead,
            ["windows"] = expected.Windows,
            ["events_per_s"] = Math.Round(bounded.EventsRead / bounded.Seconds),
            ["peak_rss_mb"] = Math.Round(bounded.PeakRssKb / 1024.0),
            ["in_memory_events_per_s"] = Math.Round(inMemory.EventsRead / inMemory.Seconds),
            ["in_memory_peak_rss_mb"] = Math.Round(inMemory.PeakRssKb / 1024.0),
            ["plain_consumer_per_s"] = Math.Round(baselinePerS),
            ["ratio_to_plain_consumer"] = Math.Round(bounded.EventsRead / bounded.Seconds / baselinePerS, 3),
            ["correct"] = correct,
        }, bounded.PeakRssKb, inMemory.PeakRssKb, correct);
    }

    private sealed record ChildRun(long EventsRead, double Seconds, long PeakRssKb, long RawClicks, long DbClicks, bool ServerGc, long GcCommittedKb);

    /// <summary>Runs <see cref="RunChildAsync"/> in a fresh process, so its peak RSS is the recount's alone.</summary>
    private static async Task<ChildRun> RecountInChildAsync(BenchmarkContext context, string bootstrapServers, string database, int? impressionsInMemory)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true };
        start.ArgumentList.Add(typeof(ReconcileBenchmark).Assembly.Location);
        start.ArgumentList.Add(ChildCommand);
        start.Environment["BENCH_BOOTSTRAP"] = bootstrapServers;
        start.Environment["BENCH_DATABASE"] = database;
        start.Environment["BENCH_FROM"] = Start.ToString("O", CultureInfo.InvariantCulture);
        start.Environment["BENCH_IMPRESSIONS_IN_MEMORY"] = impressionsInMemory?.ToString(CultureInfo.InvariantCulture) ?? "";
        // The harness runs with the server GC; the kafkaclicks program, whose roles and commands reconcile, with the
        // workstation GC (its default): the recount is measured as it runs there.
        start.Environment["DOTNET_gcServer"] = "0";
        using var child = Process.Start(start)!;
        var output = await child.StandardOutput.ReadToEndAsync();
        await child.WaitForExitAsync();
        if (child.ExitCode != 0)
        {
            throw new InvalidOperationException($"the recount process exited with {child.ExitCode}");
        }

        var run = JsonSerializer.Deserialize<ChildRun>(output)!;
        context.Say($"{(impressionsInMemory is null ? "bounded" : "in-memory")}: {run.EventsRead:N0} events in {run.Seconds:F1} s, peak RSS {run.PeakRssKb / 1024:N0} MB, "
            + $"{run.RawClicks:N0} clicks recounted, {run.DbClicks:N0} stored; GC {(run.ServerGc ? "server" : "workstation")}, {run.GcCommittedKb / 1024:N0} MB committed at the end");
        return run;
    }

    /// <summary>The argument that makes kafkaclicks-bench run one recount (<see cref="RunChildAsync"/>) instead of a benchmark.</summary>
    public const string ChildCommand = "reconcile-recount";

    /// <summary>One dry-run recount of the benchmark's range, printed as JSON with this process's peak RSS.</summary>
    public static async Task<int> RunChildAsync()
    {
        var from = DateTime.Parse(Environment.GetEnvironmentVariable("BENCH_FROM")!, CultureInfo.InvariantCulture, DateTimeStyles.RoundtripKind);
        var inMemory = Environment.GetEnvironmentVariable("BENCH_IMPRESSIONS_IN_MEMORY") is { Length: > 0 } n ? int.Parse(n, CultureInfo.InvariantCulture) : (int?)null;
        await using var dataSource = NpgsqlDataSource.Create(Environment.GetEnvironmentVariable("BENCH_DATABASE")!);
        var counter = new RawLogCounter(KafkaClientFactory.For(Environment.GetEnvironmentVariable("BENCH_BOOTSTRAP")!), TimeSpan.FromMinutes(5),
            impressionsInMemory: inMemory);
        var timer = Stopwatch.StartNew();
        var report = await new ClickReconciler(dataSource, counter).RunAsync(new ReconcileRequest(from, from.AddMinutes(21), null, true), null, default);
        timer.Stop();
        var peakKb = File.ReadLines("/proc/self/status").Where(l => l.StartsWith("VmHWM:", StringComparison.Ordinal))
            .Select(l => long.Parse(l["VmHWM:".Length..].Trim().Split(' ')[0], CultureInfo.InvariantCulture)).Single();
        Console.WriteLine(JsonSerializer.Serialize(new ChildRun(report.EventsRead, timer.Elapsed.TotalSeconds, peakKb, report.RawClicks, report.DbClicks,
            System.Runtime.GCSettings.IsServerGC, GC.GetGCMemoryInfo().TotalCommittedBytes / 1024)));
        return 0;
    }

    /// <summary>Stores every window's right per-salt count, one click too many in every hundredth; returns how many windows are wrong and by how many clicks in all.</summary>
    private static async Task<(long Windows, long Clicks)> StoreAsync(NpgsqlDataSource dataSource, LoadExpectation expected)
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
        return (wrong.Count, (index + 99) / 100);
    }

}
