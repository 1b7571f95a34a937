using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using Confluent.Kafka;
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
/// wrk replays distinct signed clicks (10,000 ads, 10 of them hot with a fifth of the clicks, 2% repeated
/// impressions) against the ingest role on the embedded broker and the local Redis and PostgreSQL; the baseline is
/// a bare ASP.NET endpoint answering 302, driven by the same wrk script in the same run.
/// </summary>
public sealed class IngestBenchmark : IBenchmark
{
    private const int Ads = 10_000;
    private const int WrkThreads = 2;
    private static readonly int WrkConnections = int.Parse(Environment.GetEnvironmentVariable("BENCH_CONNECTIONS") ?? "128", CultureInfo.InvariantCulture);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var seconds = int.Parse(Environment.GetEnvironmentVariable("BENCH_DURATION_S") ?? "30", CultureInfo.InvariantCulture);
        var database = await context.CreateDatabaseAsync("kc_bench_ingest");
        await BenchmarkContext.SeedAdsAsync(database, Ads);
        var overrides = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Postgres"] = database,
            ["ConnectionStrings:Redis"] = context.Redis,
            ["Kafka:BootstrapServers"] = "",
            ["Ingest:Tokens:ActiveKeyId"] = "bench",
            ["Ingest:PublicBaseUrl"] = "https://click.bench.test",
            ["Ingest:Tokens:Keys:bench"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["Logging:LogLevel:Default"] = "Warning",
        };
        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.Ingest);
        await using var app = KafkaClicksHost.Build(Role.Ingest, broker, overrides);
        await app.StartAsync();
        await using var baseline = BareRedirect();
        await baseline.StartAsync();

        var paths = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-clicks.txt");
        var minted = WriteClicks(app.Services.GetRequiredService<ImpressionMinter>(), paths, seconds * 30_000);
        context.Say($"{minted:N0} click paths written; baseline first ({seconds} s)");
        var baselineRun = await RunWrkAsync(baseline.Urls.First(), paths, seconds);
        context.Say($"baseline {baselineRun.Requests / baselineRun.DurationS:N0} req/s; now the ingest role ({seconds} s)");

        using var accepted = new OutcomeListener();
        var ingestRun = await RunWrkAsync(app.Urls.First(), paths, seconds);
        var rss = BenchmarkContext.RssMb();

        // Stopping drains the requests still in flight when wrk ended, so both counts are final.
        await app.StopAsync();
        var counted = CountEvents(broker.BootstrapServers);
        context.Say($"ingest {ingestRun.Requests / ingestRun.DurationS:N0} req/s, accepted {accepted.Accepted:N0}, in clicks.raw {counted:N0}");
        await context.DropDatabaseAsync(database);
        File.Delete(paths);
        var clicksPerS = ingestRun.Requests / ingestRun.DurationS;
        var baselinePerS = baselineRun.Requests / baselineRun.DurationS;
        return new Dictionary<string, object>
        {
            ["benchmark"] = "ingest",
            ["duration_s"] = seconds,
            ["clicks_per_s"] = Math.Round(clicksPerS),
            ["p50_ms"] = ingestRun.P50Ms,
            ["p99_ms"] = ingestRun.P99Ms,
            ["errors"] = ingestRun.SocketErrors + ingestRun.OtherStatus,
            ["baseline_per_s"] = Math.Round(baselinePerS),
            ["baseline_p99_ms"] = baselineRun.P99Ms,
            ["ratio"] = Math.Round(clicksPerS / baselinePerS, 3),
            ["rss_mb"] = Math.Round(rss),
            ["accepted"] = accepted.Accepted,
            ["counted"] = counted,
            ["duplicates"] = accepted.Duplicates,
            ["accepted_equals_counted"] = accepted.Accepted == counted,
        };
    }

    private static WebApplication BareRedirect()
    {
        var builder = WebApplication.CreateSlimBuilder();
        builder.Logging.ClearProviders();
        builder.WebHost.UseUrls("http://127.0.0.1:0");
        var app = builder.Build();
        app.MapGet("/c/{token}", (string token) => Results.Redirect("https://advertiser.example/landing"));
        return app;
    }

    /// <summary>Writes one "/c/TOKEN" line per click: hot ads get a fifth of the clicks, 2% repeat an earlier impression.</summary>
    private static int WriteClicks(ImpressionMinter minter, string path, int count)
    {
        var random = new Random(7);
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
                var adId = random.NextDouble() < 0.2 ? 1 + random.Next(10) : 1 + random.Next(Ads);
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

    private sealed record WrkResult(long Requests, double DurationS, long Redirects, long OtherStatus, long SocketErrors, double P50Ms, double P99Ms);

    /// <summary>Counts the ingest role's outcomes in-process, from the same instrument /metrics exports.</summary>
    private sealed class OutcomeListener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _accepted;
        private long _duplicates;

        public OutcomeListener()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name == "kafkaclicks.ingest.clicks")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
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

        public void Dispose() => _listener.Dispose();
    }
}
