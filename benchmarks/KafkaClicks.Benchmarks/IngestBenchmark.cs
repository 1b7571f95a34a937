using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Confluent.Kafka;
using KafkaClicks.Cli.Commands;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// wrk replays distinct signed clicks (BENCH_ADS ads, default the brief's 10,000,000: 10 hot ones with a fifth of the
/// clicks, the rest Zipf-like, 2% repeated impressions) against the ingest role on the embedded broker and the local
/// Redis and PostgreSQL; the baseline is a bare ASP.NET endpoint answering 302, driven by the same wrk script in the
/// same run, each warmed up first (BENCH_WARMUP_S, 10 s, not counted), then the two alternating in BENCH_ROUNDS rounds
/// (3). Then both are offered a fixed BENCH_RATE (10,000/s) with fresh clicks, for the latency at that rate
/// rather than at saturation. Reports where ad lookups were answered (cache, the local ad directory, PostgreSQL) and
/// what the directory's first copy of the table cost.
/// </summary>
public sealed class IngestBenchmark : IBenchmark
{
    private static readonly int Ads = int.Parse(Environment.GetEnvironmentVariable("BENCH_ADS") ?? "10000000", CultureInfo.InvariantCulture);
    private static readonly int FixedRate = int.Parse(Environment.GetEnvironmentVariable("BENCH_RATE") ?? "10000", CultureInfo.InvariantCulture);
    private static readonly int Rounds = int.Parse(Environment.GetEnvironmentVariable("BENCH_ROUNDS") ?? "3", CultureInfo.InvariantCulture);
    private static readonly int WarmupSeconds = int.Parse(Environment.GetEnvironmentVariable("BENCH_WARMUP_S") ?? "10", CultureInfo.InvariantCulture);
    private static readonly TimeSpan Settle = TimeSpan.FromSeconds(2);
    private const int WrkThreads = 2;
    private static readonly int WrkConnections = int.Parse(Environment.GetEnvironmentVariable("BENCH_CONNECTIONS") ?? "128", CultureInfo.InvariantCulture);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var seconds = int.Parse(Environment.GetEnvironmentVariable("BENCH_DURATION_S") ?? "30", CultureInfo.InvariantCulture);
        var database = await context.CreateDatabaseAsync("kc_bench_ingest");
        var seeding = Stopwatch.StartNew();
        await BenchmarkContext.SeedAdsAsync(database, Ads);
        context.Say($"{Ads:N0} ads seeded in {seeding.Elapsed.TotalSeconds:F0} s");
        var adDirectory = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-ad-directory-" + Guid.NewGuid().ToString("N")[..8]);
        var overrides = context.ProductSettings(database);
        overrides["Ingest:AdDirectory:Path"] = adDirectory;
        var spool = adDirectory + "-spool";
        overrides["Ingest:Spool:Directory"] = spool;
        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.Ingest);
        await using var app = KafkaClicksHost.Build(Role.Ingest, broker, overrides);
        var copying = Stopwatch.StartNew();
        await app.StartAsync();
        var directory = app.Services.GetRequiredService<LocalAdDirectory>();
        while (!directory.Loaded)
        {
            await Task.Delay(200);
        }

        var copySeconds = copying.Elapsed.TotalSeconds;
        var directoryMb = new DirectoryInfo(adDirectory).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length) / 1048576.0;
        context.Say($"ad directory: first copy in {copySeconds:F0} s, {directoryMb:F0} MB on disk");
        await using var baseline = BareRedirect();
        await baseline.StartAsync();

        // The saturation runs alternate, baseline then ingest, in Rounds rounds of seconds / Rounds each: a slow
        // stretch of a shared host then weighs on both sides of the ratio instead of on one. Each round's ingest run
        // gets click paths of its own, so that no round replays another's impressions (they would be duplicates).
        if (Rounds < 1 || seconds < Rounds)
        {
            throw new InvalidOperationException($"BENCH_ROUNDS must be between 1 and BENCH_DURATION_S ({seconds}), not {Rounds}");
        }

        var roundSeconds = seconds / Rounds;
        var minter = app.Services.GetRequiredService<ImpressionMinter>();
        var roundPaths = Enumerable.Range(1, Rounds).Select(r => Path.Combine(Path.GetTempPath(), $"kafkaclicks-bench-clicks-{r}.txt")).ToList();
        var minted = roundPaths.Select((path, round) => WriteClicks(minter, path, roundSeconds * 30_000, seed: 100 + round)).Sum();
        context.Say($"{minted:N0} click paths written; {Rounds} rounds of {roundSeconds} s, baseline then ingest");

        // Warm-up, not counted: each side once for WarmupSeconds with clicks of its own (JIT tiers, connection pools,
        // the ingest role's ad cache, which starts empty and holds the ads clicked most once warm, as in production).
        using var accepted = new OutcomeListener();
        var warmupPaths = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-clicks-warmup.txt");
        WriteClicks(minter, warmupPaths, Math.Max(1, WarmupSeconds) * 30_000, seed: 7);
        if (WarmupSeconds > 0)
        {
            await RunWrkAsync(baseline.Urls.First(), warmupPaths, WarmupSeconds);
            var warm = await RunWrkAsync(app.Urls.First(), warmupPaths, WarmupSeconds);
            context.Say($"warm-up ({WarmupSeconds} s each, not counted): ingest {warm.Requests / warm.DurationS:N0} req/s");
        }

        File.Delete(warmupPaths);
        using var measured = new OutcomeListener();
        var rounds = new List<(WrkResult Baseline, WrkResult Ingest)>();
        foreach (var paths in roundPaths)
        {
            // A pause before each run, so that what the previous one left (the producer's last batches, a collection)
            // is not billed to the next, which shares the process.
            await Task.Delay(Settle);
            var baselineRound = await RunWrkAsync(baseline.Urls.First(), paths, roundSeconds);
            await Task.Delay(Settle);
            var ingestRound = await RunWrkAsync(app.Urls.First(), paths, roundSeconds);
            rounds.Add((baselineRound, ingestRound));
            context.Say($"round {rounds.Count}: baseline {baselineRound.Requests / baselineRound.DurationS:N0} req/s, " +
                $"ingest {ingestRound.Requests / ingestRound.DurationS:N0} req/s ({ingestRound.Requests / ingestRound.DurationS / (baselineRound.Requests / baselineRound.DurationS):F3})");
        }

        var baselineRun = WrkResult.Combine(rounds.Select(r => r.Baseline));
        var ingestRun = WrkResult.Combine(rounds.Select(r => r.Ingest));
        var rss = BenchmarkContext.RssMb();
        var lookups = measured.Lookups;

        // The same offered rate for both, with clicks not seen before: latency at the brief's peak, not at saturation.
        var fresh = new List<string>(FixedRate * seconds);
        var freshPath = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-fixed.txt");
        WriteClicks(app.Services.GetRequiredService<ImpressionMinter>(), freshPath, FixedRate * seconds, seed: 200);
        fresh.AddRange(File.ReadLines(freshPath));
        File.Delete(freshPath);
        context.Say($"fixed rate {FixedRate:N0}/s for {seconds} s: baseline, then the ingest role");
        var baselineFixed = await ClickLoad.RunAsync(new Uri(baseline.Urls.First()), i => fresh[(int)(i % fresh.Count)], FixedRate,
            TimeSpan.FromSeconds(seconds), progress: null, CancellationToken.None);
        var ingestFixed = await ClickLoad.RunAsync(new Uri(app.Urls.First()), i => fresh[(int)(i % fresh.Count)], FixedRate,
            TimeSpan.FromSeconds(seconds), progress: null, CancellationToken.None);

        // Stopping drains the requests still in flight when wrk ended, so both counts are final.
        await app.StopAsync();
        var counted = CountEvents(broker.BootstrapServers);
        context.Say($"ingest {ingestRun.Requests / ingestRun.DurationS:N0} req/s, accepted {accepted.Accepted:N0}, in clicks.raw {counted:N0}");
        await context.DropDatabaseAsync(database);
        roundPaths.ForEach(File.Delete);
        Directory.Delete(adDirectory, recursive: true);
        Directory.Delete(spool, recursive: true);
        var lookupsTotal = Math.Max(1, lookups.Values.Sum());
        var clicksPerS = ingestRun.Requests / ingestRun.DurationS;
        var baselinePerS = baselineRun.Requests / baselineRun.DurationS;
        return new Dictionary<string, object>
        {
            ["benchmark"] = "ingest",
            ["ads"] = Ads,
            ["duration_s"] = roundSeconds * Rounds,
            ["warmup_s"] = WarmupSeconds,
            ["clicks_per_s"] = Math.Round(clicksPerS),
            ["p50_ms"] = ingestRun.P50Ms,
            ["p99_ms"] = ingestRun.P99Ms,
            ["errors"] = ingestRun.SocketErrors + ingestRun.OtherStatus,
            ["baseline_per_s"] = Math.Round(baselinePerS),
            ["baseline_p99_ms"] = baselineRun.P99Ms,
            ["ratio"] = Math.Round(clicksPerS / baselinePerS, 3),
            ["rounds"] = rounds.Select(r => new Dictionary<string, object>
            {
                ["baseline_per_s"] = Math.Round(r.Baseline.Requests / r.Baseline.DurationS),
                ["clicks_per_s"] = Math.Round(r.Ingest.Requests / r.Ingest.DurationS),
                ["ratio"] = Math.Round(r.Ingest.Requests / r.Ingest.DurationS / (r.Baseline.Requests / r.Baseline.DurationS), 3),
                ["p99_ms"] = r.Ingest.P99Ms,
            }).ToList(),
            ["rss_mb"] = Math.Round(rss),
            ["accepted"] = accepted.Accepted,
            ["counted"] = counted,
            ["duplicates"] = accepted.Duplicates,
            ["accepted_equals_counted"] = accepted.Accepted == counted,
            ["ad_directory_copy_s"] = Math.Round(copySeconds, 1),
            ["ad_directory_mb"] = Math.Round(directoryMb),
            ["ad_lookups"] = lookups,
            ["ad_cache_hit_rate"] = Math.Round(lookups.GetValueOrDefault("cache") / (double)lookupsTotal, 3),
            ["ad_database_share"] = Math.Round(lookups.GetValueOrDefault("database") / (double)lookupsTotal, 4),
            ["fixed_rate"] = new Dictionary<string, object>
            {
                ["offered_per_s"] = FixedRate,
                ["achieved_per_s"] = ingestFixed["achieved_per_s"],
                ["p50_ms"] = ingestFixed["p50_ms"],
                ["p99_ms"] = ingestFixed["p99_ms"],
                ["errors"] = (long)ingestFixed["errors"] + (long)ingestFixed["other_status"],
                ["baseline_achieved_per_s"] = baselineFixed["achieved_per_s"],
                ["baseline_p50_ms"] = baselineFixed["p50_ms"],
                ["baseline_p99_ms"] = baselineFixed["p99_ms"],
            },
        };
    }

    private static WebApplication BareRedirect()
    {
        // Hosted as the product hosts its roles (KafkaClicksHost): content root in the program's folder. The default, the
        // working directory, is the checkout, whose .local/ holds PostgreSQL's data: the configuration file watcher then
        // handled every write PostgreSQL made, on the cores the measured role runs on.
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapGet("/c/{token}", (string token) => Results.Redirect("https://advertiser.example/landing"));
        return app;
    }

    /// <summary>Writes one "/c/TOKEN" line per click: hot ads get a fifth of the clicks, 2% repeat an earlier impression.</summary>
    private static int WriteClicks(ImpressionMinter minter, string path, int count, int seed)
    {
        // A seed per file: the files share no sequence of ads, so no run finds the ad cache primed by an earlier one.
        var random = new Random(seed);
        var recent = new string[1024];
        using var writer = new StreamWriter(path);
        for (var i = 0; i < count; i++)
        {
            string line;
            if (i > recent.Length && random.NextDouble() < 0.02)
            {
                line = recent[random.Next(recent.Length)];
            }
            else
            {
                // Beyond the 10 hot ads, rank r is clicked with probability about 1/r (log-uniform ranks): a few ads
                // take most clicks and the long tail of 10,000,000 is still clicked now and then.
                var adId = random.NextDouble() < 0.2 ? 1 + random.Next(10) : Math.Min(Ads, (long)Math.Pow(Ads, random.NextDouble()));
                line = "/c/" + minter.Mint(adId).Token;
                recent[i % recent.Length] = line;
            }

            writer.WriteLine(line);
        }

        return count;
    }

    private static async Task<WrkResult> RunWrkAsync(string url, string paths, int seconds)
    {
        var script = Path.Combine(AppContext.BaseDirectory, "wrk", "clicks.lua");
        var start = new ProcessStartInfo("wrk") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "-t", WrkThreads.ToString(CultureInfo.InvariantCulture), "-c", WrkConnections.ToString(CultureInfo.InvariantCulture),
                     "-d", $"{seconds}s", "--timeout", "5s", "-s", script, url })
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment["CLICK_PATHS"] = paths;
        start.Environment["WRK_THREADS"] = WrkThreads.ToString(CultureInfo.InvariantCulture);
        using var process = Process.Start(start)!;
        var output = await process.StandardOutput.ReadToEndAsync();
        var error = await process.StandardError.ReadToEndAsync();
        await process.WaitForExitAsync();
        var line = output.Split('\n').FirstOrDefault(l => l.StartsWith("WRKJSON ", StringComparison.Ordinal))
            ?? throw new InvalidOperationException($"wrk printed no result: {output} {error}");
        return JsonSerializer.Deserialize<WrkResult>(line["WRKJSON ".Length..], JsonOptions)!;
    }

    private static readonly JsonSerializerOptions JsonOptions = new() { PropertyNamingPolicy = JsonNamingPolicy.SnakeCaseLower };

    private static long CountEvents(string bootstrapServers)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "bench-count" }).Build();
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        return admin.GetMetadata(Topics.ClicksRaw, TimeSpan.FromSeconds(10)).Topics.Single().Partitions
            .Sum(p => consumer.QueryWatermarkOffsets(new TopicPartition(Topics.ClicksRaw, p.PartitionId), TimeSpan.FromSeconds(10)).High.Value);
    }

    private sealed record WrkResult(long Requests, double DurationS, long Redirects, long OtherStatus, long SocketErrors, double P50Ms, double P99Ms)
    {
        /// <summary>Rounds as one run: requests and seconds summed, the median round's p50 and the worst round's p99.</summary>
        public static WrkResult Combine(IEnumerable<WrkResult> rounds)
        {
            var all = rounds.ToList();
            var p50s = all.Select(r => r.P50Ms).Order().ToList();
            return new WrkResult(all.Sum(r => r.Requests), all.Sum(r => r.DurationS), all.Sum(r => r.Redirects), all.Sum(r => r.OtherStatus),
                all.Sum(r => r.SocketErrors), p50s[p50s.Count / 2], all.Max(r => r.P99Ms));
        }
    }

    /// <summary>Counts the ingest role's outcomes in-process, from the same instrument /metrics exports.</summary>
    private sealed class OutcomeListener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _accepted;
        private long _duplicates;
        private readonly Dictionary<string, long> _lookups = [];

        public OutcomeListener()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name is "kafkaclicks.ingest.clicks" or "kafkaclicks.ingest.ad_lookups")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    if (tag.Key == "source" && tag.Value is string source)
                    {
                        lock (_lookups)
                        {
                            _lookups[source] = _lookups.GetValueOrDefault(source) + value;
                        }
                    }

                    if (tag.Key != "outcome")
                    {
                        continue;
                    }

                    switch (tag.Value as string)
                    {
                        case "counted" or "counted_unchecked":
                            Interlocked.Add(ref _accepted, value);
                            break;
                        case "duplicate":
                            Interlocked.Add(ref _duplicates, value);
                            break;
                    }
                }
            });
            _listener.Start();
        }

        public long Accepted => Interlocked.Read(ref _accepted);

        public long Duplicates => Interlocked.Read(ref _duplicates);

        /// <summary>Ad lookups so far by where they were answered: cache, directory, database.</summary>
        public Dictionary<string, long> Lookups
        {
            get
            {
                lock (_lookups)
                {
                    return new Dictionary<string, long>(_lookups);
                }
            }
        }

        public void Dispose() => _listener.Dispose();
    }
}
