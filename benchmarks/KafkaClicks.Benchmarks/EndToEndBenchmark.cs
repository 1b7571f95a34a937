using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Text.Json;
using System.Text.RegularExpressions;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Npgsql;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// Clicks at a steady offered rate (default 10,000/s for 60 s, after a 10 s warm-up) through the click path laid out
/// as in production, one process per role: the embedded broker (or, with BENCH_BROKER=cluster, the Kafka-protocol
/// cluster of the production engines, which e2e.sh starts), ingest and the aggregator as child `kafkaclicks` processes,
/// the load generator as `kafkaclicks loadgen`, the sink in this process (which otherwise only waits), with the local
/// Redis and PostgreSQL. Reports accepted clicks, what the stream counted, what reached the database,
/// freshness (the sink's click-to-queryable delay), ingest latency, and CPU microseconds per accepted click for each
/// process from /proc. The baselines are the offered rate and, for CPU, the same processes idle for a few seconds.
/// </summary>
public sealed partial class EndToEndBenchmark : IBenchmark
{
    private const int Ads = 1000;
    private static readonly TimeSpan IdleWindow = TimeSpan.FromSeconds(5);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var rate = Knob("BENCH_RATE", 10_000);
        var seconds = Knob("BENCH_DURATION_S", 60);
        var warmup = Knob("BENCH_WARMUP_S", 10);
        var database = await context.CreateDatabaseAsync("kc_bench_e2e");
        await BenchmarkContext.SeedAdsAsync(database, Ads);
        var settings = context.ProductSettings(database);
        string[] folders =
        [
            Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-spool-" + Guid.NewGuid().ToString("N")),
            Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-e2e-" + Guid.NewGuid().ToString("N")),
        ];
        settings["Ingest:Spool:Directory"] = folders[0];
        settings["Aggregator:StateDirectory"] = folders[1];

        // The embedded broker as its own process, or the Kafka-protocol cluster e2e.sh started (BENCH_BROKER=cluster).
        var cluster = Environment.GetEnvironmentVariable("BENCH_KAFKA");
        await using var broker = cluster is { Length: > 0 } ? null : CliProcess.Start("broker", settings, "broker");
        settings["Kafka:BootstrapServers"] = broker is null
            ? cluster
            : (await broker.WaitForLineAsync("bootstrap servers: "))["bootstrap servers: ".Length..].Trim();
        var brokerPid = broker?.Id ?? int.Parse(File.ReadAllText(Environment.GetEnvironmentVariable("BENCH_KAFKA_PIDFILE")
            ?? throw new InvalidOperationException("BENCH_KAFKA_PIDFILE must name the cluster's pid file (benchmarks/e2e.sh sets it)")).Trim(),
            CultureInfo.InvariantCulture);
        await using var ingest = CliProcess.Start("ingest", settings, "run", "--roles", "ingest", "--urls", "http://127.0.0.1:0");
        await using var aggregator = CliProcess.Start("aggregator", settings, "run", "--roles", "aggregator", "--urls", "http://127.0.0.1:0");
        var ingestUrl = await BaseUrlAsync(ingest);
        var aggregatorUrl = await BaseUrlAsync(aggregator);
        using var freshness = new FreshnessListener();
        await using var sinkBroker = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(settings), Role.Sink);
        await using var sink = KafkaClicksHost.Build(Role.Sink, sinkBroker, settings);
        await sink.StartAsync();

        await using var dataSource = NpgsqlDataSource.Create(database);
        using var http = new HttpClient();
        var servers = new Servers(
            ingest.Id, aggregator.Id, brokerPid, await PostmasterAsync(dataSource), await RedisPidAsync(context.Redis));
        async Task<long> AcceptedAsync() =>
            (long)await ScrapeAsync(http, ingestUrl, "kafkaclicks_ingest_clicks_total", "counted") + await UncheckedAsync();
        async Task<long> UncheckedAsync() => (long)await ScrapeAsync(http, ingestUrl, "kafkaclicks_ingest_clicks_total", "counted_unchecked");
        async Task<long> StoredAsync()
        {
            await using var command = dataSource.CreateCommand("SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute");
            return (long)(await command.ExecuteScalarAsync())!;
        }

        async Task<long> StreamAsync(string outcome) =>
            (long)await ScrapeAsync(http, aggregatorUrl, "kafkaclicks_aggregator_clicks_total", outcome);

        // Every accepted click through the stream and every one it counted stored (or 90 s gone): the end of a measured
        // interval, so each role's work for the interval's clicks falls inside it. A click accepted while Redis did not
        // answer in time (counted_unchecked) may repeat an impression, which the stream rightly drops as a duplicate, so
        // "lost" (accepted - stored) up to accepted_unchecked is that, not a loss.
        async Task DrainAsync()
        {
            var deadline = DateTime.UtcNow.AddSeconds(90);
            while (DateTime.UtcNow < deadline)
            {
                var accepted = await AcceptedAsync();
                var counted = await StreamAsync("counted");
                var stored = await StoredAsync();
                if (counted + await StreamAsync("duplicate") + await StreamAsync("late") >= accepted && stored >= counted
                    && stored >= accepted - await UncheckedAsync())
                {
                    return;
                }

                await Task.Delay(1000);
            }
        }

        if (warmup > 0)
        {
            context.Say($"warming up: {rate:N0} clicks/s for {warmup} s");
            await LoadAsync(settings, ingestUrl, rate, warmup);
            await DrainAsync();
        }

        context.Say($"baselines: every process idle for {IdleWindow.TotalSeconds} s; the load generator's start with no clicks");
        var idleStart = servers.Sample();
        await Task.Delay(IdleWindow);
        var idle = servers.Sample().Minus(idleStart);
        var loadgenStart = (await LoadAsync(settings, ingestUrl, rate, 0)).Ticks;

        context.Say($"offering {rate:N0} clicks/s for {seconds} s");
        var acceptedBefore = await AcceptedAsync();
        var latencyBefore = await IngestLatency.ScrapeAsync(http, ingestUrl);
        var countersBefore = await IngestCountersAsync(http, ingestUrl);
        freshness.Clear();
        var start = servers.Sample();
        var load = await LoadAsync(settings, ingestUrl, rate, seconds);
        await DrainAsync();
        var used = servers.Sample().Minus(start);
        var latency = (await IngestLatency.ScrapeAsync(http, ingestUrl)).Minus(latencyBefore);
        var countersAfter = await IngestCountersAsync(http, ingestUrl);
        double Delta(string metric) => countersAfter[metric] - countersBefore[metric];
        var accepted = await AcceptedAsync();
        var @unchecked = await UncheckedAsync();
        var clicks = accepted - acceptedBefore;
        var stored = await StoredAsync();
        var counted = await StreamAsync("counted");
        var late = await StreamAsync("late");
        context.Say($"accepted {accepted:N0} ({@unchecked:N0} unchecked), counted by the stream {counted:N0} ({late:N0} late), " +
            $"in the database {stored:N0} (warm-up included)");

        // CPU microseconds per accepted click of the measured run, by process; idle: the idle window's rate over as long.
        var perTick = 1e6 / ProcessCpu.TicksPerSecond / Math.Max(1, clicks);
        var idleScale = used.Seconds / idle.Seconds;
        var byProcess = new Dictionary<string, object>
        {
            ["load_generator"] = new Dictionary<string, object>
            {
                ["us_per_click"] = Math.Round(Math.Max(0, load.Ticks - loadgenStart) * perTick, 1),
                ["note"] = "the kafkaclicks loadgen process, less its start and exit measured as a run with no clicks",
            },
        };
        foreach (var (name, ticks) in used.Ticks)
        {
            var entry = new Dictionary<string, object>
            {
                ["us_per_click"] = Math.Round(ticks * perTick, 1),
                ["idle_us_per_click"] = Math.Round(idle.Ticks[name] * idleScale * perTick, 1),
            };
            if (used.Threads.TryGetValue(name, out var threads))
            {
                // Threads by name that used at least 5% of the process; what threads that ended had used is only in the
                // process total, so it is in the remainder.
                var listed = threads.Where(t => t.Value * 20 >= ticks).OrderByDescending(t => t.Value).ToList();
                var groups = listed.ToDictionary(t => t.Key, t => (object)Math.Round(t.Value * perTick, 1));
                groups["other and ended threads"] = Math.Round((ticks - listed.Sum(t => t.Value)) * perTick, 1);
                entry["threads"] = groups;
                entry["rss_mb"] = Math.Round(BenchmarkContext.RssMb(servers.ThreadPids[name]));
            }

            byProcess[name] = entry;
        }

        var total = byProcess.Values.Sum(e => (double)((Dictionary<string, object>)e)["us_per_click"]);
        var biggest = byProcess.MaxBy(e => (double)((Dictionary<string, object>)e.Value)["us_per_click"]);
        var rss = servers.ThreadPids.Values.Sum(pid => BenchmarkContext.RssMb(pid));

        await sink.StopAsync();
        await context.DropDatabaseAsync(database);
        foreach (var folder in folders.Where(Directory.Exists))
        {
            Directory.Delete(folder, recursive: true);
        }

        return new Dictionary<string, object>
        {
            ["benchmark"] = "e2e",
            ["broker"] = broker is null ? "Kafka-protocol cluster (kfake, 3 brokers in one process)" : "embedded (librdkafka's mock cluster)",
            ["producer_linger_ms"] = new KafkaClientFactory(KafkaClicksHost.LoadConfiguration(settings)).ProducerConfig().LingerMs ?? 0,
            ["offered_per_s"] = rate,
            ["connections"] = load.Result.GetProperty("connections").GetInt32(),
            ["achieved_per_s"] = load.Result.GetProperty("achieved_per_s").GetDouble(),
            ["duration_s"] = load.Result.GetProperty("duration_s").GetDouble(),
            ["warmup_s"] = warmup,
            ["accepted"] = accepted,
            ["counted"] = counted,
            ["counted_db"] = stored,
            ["lost"] = accepted - stored,
            ["accepted_unchecked"] = @unchecked,
            ["stream_late"] = late,
            ["freshness_p50_s"] = freshness.Percentile(0.50),
            ["freshness_p99_s"] = freshness.Percentile(0.99),
            ["ingest_p50_ms"] = load.Result.GetProperty("p50_ms").GetDouble(),
            ["ingest_p99_ms"] = load.Result.GetProperty("p99_ms").GetDouble(),
            ["ingest_over_ms"] = latency.Report(),
            ["spool_hedge_after_ms"] = KafkaClicksHost.LoadConfiguration(settings).GetValue("Ingest:Spool:HedgeAfter", new SpoolOptions().HedgeAfter).TotalMilliseconds,
            ["ingest_gc"] = new Dictionary<string, object>
            {
                ["pause_ms"] = Math.Round(Delta(GcPause) * 1000),
                ["collections"] = Delta(GcCollections),
                ["note"] = "the ingest process's garbage collections and their total pause over the measured run",
            },
            ["loadgen_gc"] = new Dictionary<string, object>
            {
                ["pause_ms"] = load.Result.GetProperty("gc_pause_ms").GetDouble(),
                ["collections"] = load.Result.GetProperty("gc_collections").GetInt64(),
                ["note"] = "the load generator's garbage collections and their total pause over its run: its latencies include them",
            },
            ["spool"] = SpoolCounters
                .ToDictionary(name => name, name => (object)new Dictionary<string, object> { ["clicks"] = Delta(name), ["share"] = Math.Round(Delta(name) / Math.Max(1, clicks), 4) })
                .Append(new KeyValuePair<string, object>("note", "clicks of the measured run answered from the spool because the broker's acknowledgement was slower than spool_hedge_after_ms (hedged), of those not forwarded because their own produce was acknowledged (settled), and clicks the spool forwarded"))
                .ToDictionary(),
            ["errors"] = load.Result.GetProperty("errors").GetInt64() + load.Result.GetProperty("other_status").GetInt64(),
            ["rss_mb"] = Math.Round(rss),
            ["cpu_us_per_click"] = Math.Round(total, 1),
            ["cpu_idle_us_per_click"] = Math.Round(byProcess.Values.Sum(e => ((Dictionary<string, object>)e).TryGetValue("idle_us_per_click", out var v) ? (double)v : 0), 1),
            ["cpu_biggest_share"] = $"{biggest.Key} {(double)((Dictionary<string, object>)biggest.Value)["us_per_click"] / total:P0}",
            ["cpu_cores_busy"] = Math.Round((total * clicks / 1e6) / used.Seconds, 2),
            ["cpu_measured_clicks"] = clicks,
            ["cpu_interval_s"] = Math.Round(used.Seconds, 1),
            ["cpu_by_process"] = byProcess,
        };
    }

    private static int Knob(string name, int fallback) =>
        int.Parse(Environment.GetEnvironmentVariable(name) ?? fallback.ToString(CultureInfo.InvariantCulture), CultureInfo.InvariantCulture);

    /// <summary>
    /// Runs `kafkaclicks loadgen` (the e2e workload: 5% of clicks on a hot ad, 2% repeated impressions) to its end: its
    /// JSON result and the CPU ticks it used, read from this process's reaped children's time.
    /// </summary>
    private static async Task<(JsonElement Result, long Ticks)> LoadAsync(Dictionary<string, string?> settings, string url, int rate, int seconds)
    {
        var before = ProcessCpu.Read(Environment.ProcessId)!.Children;
        await using var loadgen = CliProcess.Start("loadgen", settings, "loadgen", "--url", url, "--rate", rate.ToString(CultureInfo.InvariantCulture),
            "--duration", seconds == 0 ? "1ms" : $"{seconds}s", "--ads", Ads.ToString(CultureInfo.InvariantCulture), "--hot-share", "0.05",
            "--duplicates", "0.02", "--connections", Knob("BENCH_CONNECTIONS", 1024).ToString(CultureInfo.InvariantCulture), "--json");
        // It exits 1 when a click failed; the errors are in its result.
        var (code, output) = await loadgen.ExitAsync();
        var ticks = ProcessCpu.Read(Environment.ProcessId)!.Children - before;
        var result = output.Split('\n').LastOrDefault(l => l.StartsWith('{'))
            ?? throw new InvalidOperationException($"loadgen exited with code {code} without a result:\n{loadgen.LastLines()}");
        return (JsonDocument.Parse(result).RootElement.Clone(), ticks);
    }

    private static readonly string[] SpoolCounters = ["hedged", "settled", "forwarded"];

    private const string GcPause = "gc_pause_s";
    private const string GcCollections = "gc_collections";

    /// <summary>The ingest role's spool counters (<see cref="SpoolCounters"/>), its GC's pause seconds and its collections, by name.</summary>
    private static async Task<Dictionary<string, double>> IngestCountersAsync(HttpClient http, string baseUrl)
    {
        var page = await MetricsPage.ReadAsync(http, baseUrl);
        var counters = SpoolCounters.ToDictionary(name => name, name => MetricsPage.Sum(page, $"kafkaclicks_ingest_spool_{name}_total"));
        counters[GcPause] = MetricsPage.Sum(page, "dotnet_gc_pause_time_seconds_total");
        counters[GcCollections] = MetricsPage.Sum(page, "dotnet_gc_collections_total");
        return counters;
    }

    /// <summary>The address a `kafkaclicks run` child listens on, from its banner.</summary>
    private static async Task<string> BaseUrlAsync(CliProcess child) =>
        HealthUrl().Match(await child.WaitForLineAsync("/healthz")).Groups["base"].Value;

    [GeneratedRegex(@"(?<base>http://[^ ]+)/healthz")]
    private static partial Regex HealthUrl();

    /// <summary>The sum of a counter's series with outcome=<paramref name="outcome"/> on a /metrics page, after the exporter's 300 ms cache.</summary>
    private static async Task<double> ScrapeAsync(HttpClient http, string baseUrl, string metric, string outcome) =>
        (await MetricsPage.ReadAsync(http, baseUrl))
            .Where(line => line.StartsWith(metric + "{", StringComparison.Ordinal) && line.Contains($"outcome=\"{outcome}\"", StringComparison.Ordinal))
            .Sum(MetricsPage.Value);

    /// <summary>The PostgreSQL server's postmaster: the parent of this connection's backend.</summary>
    private static async Task<int> PostmasterAsync(NpgsqlDataSource dataSource)
    {
        await using var command = dataSource.CreateCommand("SELECT pg_backend_pid()");
        return ProcessCpu.Read((int)(await command.ExecuteScalarAsync())!)!.ParentId;
    }

    /// <summary>The Redis server's process id (INFO, an admin command for the client).</summary>
    private static async Task<int> RedisPidAsync(string connectionString)
    {
        await using var redis = await StackExchange.Redis.ConnectionMultiplexer.ConnectAsync(connectionString + ",allowAdmin=true");
        var info = await redis.GetServer(redis.GetEndPoints()[0]).InfoAsync("server");
        return int.Parse(info.SelectMany(g => g).Single(p => p.Key == "process_id").Value, CultureInfo.InvariantCulture);
    }

    /// <summary>The server processes of the click path, sampled together at the start and the end of an interval.</summary>
    private sealed class Servers(int ingest, int aggregator, int broker, int postmaster, int redis)
    {
        /// <summary>The processes whose threads are reported by name (the kafkaclicks ones; this one hosts the sink).</summary>
        public Dictionary<string, int> ThreadPids { get; } = new()
        {
            ["ingest"] = ingest, ["aggregator"] = aggregator, ["broker"] = broker, ["sink"] = Environment.ProcessId,
        };

        public Sample Sample()
        {
            var clock = Stopwatch.GetTimestamp();
            var ticks = new Dictionary<string, long>
            {
                ["ingest"] = Own(ingest), ["redis"] = Own(redis), ["broker"] = Own(broker), ["aggregator"] = Own(aggregator),
                ["sink"] = Own(Environment.ProcessId), ["postgres"] = ProcessCpu.ServerTicks(postmaster),
            };
            return new Sample(clock, ticks, ThreadPids.ToDictionary(p => p.Key, p => ProcessCpu.ByThreadName(p.Value)));
        }

        private static long Own(int pid) => (ProcessCpu.Read(pid) ?? throw new InvalidOperationException($"process {pid} has ended")).Own;
    }

    private sealed record Sample(long Clock, Dictionary<string, long> Ticks, Dictionary<string, Dictionary<string, long>> Threads)
    {
        /// <summary>What was used between <paramref name="start"/> and this sample.</summary>
        public Interval Minus(Sample start) => new(
            Stopwatch.GetElapsedTime(start.Clock, Clock).TotalSeconds,
            Ticks.ToDictionary(t => t.Key, t => t.Value - start.Ticks[t.Key]),
            Threads.ToDictionary(p => p.Key, p => p.Value.ToDictionary(t => t.Key, t => t.Value - start.Threads[p.Key].GetValueOrDefault(t.Key))));
    }

    /// <summary>CPU ticks used over <paramref name="Seconds"/>, by process and by thread name.</summary>
    private sealed record Interval(double Seconds, Dictionary<string, long> Ticks, Dictionary<string, Dictionary<string, long>> Threads);

    /// <summary>The sink's click-to-queryable delays, read in-process from its instrument.</summary>
    private sealed class FreshnessListener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly List<double> _freshness = [];

        public FreshnessListener()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name == "kafkaclicks.sink.freshness")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
            {
                lock (_freshness)
                {
                    _freshness.Add(value);
                }
            });
            _listener.Start();
        }

        public void Clear()
        {
            lock (_freshness)
            {
                _freshness.Clear();
            }
        }

        public double Percentile(double p)
        {
            lock (_freshness)
            {
                if (_freshness.Count == 0)
                {
                    return 0;
                }

                var sorted = _freshness.Order().ToArray();
                return Math.Round(sorted[Math.Min(sorted.Length - 1, (int)(p * sorted.Length))], 2);
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
