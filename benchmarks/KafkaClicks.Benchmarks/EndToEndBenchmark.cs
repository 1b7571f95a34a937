using System.Diagnostics.Metrics;
using System.Globalization;
using System.Security.Cryptography;
using KafkaClicks.Cli.Commands;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// Clicks at a steady offered rate (default 10,000/s for 60 s) through every role in one process on the embedded
/// broker, the local Redis and PostgreSQL: accepted clicks, what the stream counted, what reached the database,
/// freshness (the sink's click-to-queryable delay) and ingest latency. The baseline is the offered rate.
/// </summary>
public sealed class EndToEndBenchmark : IBenchmark
{
    private const int Ads = 1000;

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var rate = int.Parse(Environment.GetEnvironmentVariable("BENCH_RATE") ?? "10000", CultureInfo.InvariantCulture);
        var seconds = int.Parse(Environment.GetEnvironmentVariable("BENCH_DURATION_S") ?? "60", CultureInfo.InvariantCulture);
        var database = await context.CreateDatabaseAsync("kc_bench_e2e");
        await BenchmarkContext.SeedAdsAsync(database, Ads);
        var overrides = context.ProductSettings(database);
        overrides["Ingest:Spool:Directory"] = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-spool-" + Guid.NewGuid().ToString("N"));
        overrides["Aggregator:StateDirectory"] = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-e2e-" + Guid.NewGuid().ToString("N"));
        using var metrics = new Listener();
        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        const Role roles = Role.Ingest | Role.Aggregator | Role.Sink | Role.Query;
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, roles);
        await using var app = KafkaClicksHost.Build(roles, broker, overrides);
        await app.StartAsync();
        context.Say($"offering {rate:N0} clicks/s for {seconds} s through every role");
        var load = await ClickLoad.RunAsync(new Uri(app.Urls.First()), app.Services.GetRequiredService<ImpressionMinter>(), rate,
            TimeSpan.FromSeconds(seconds), Ads, 0.05, 0.02, progress: null, CancellationToken.None);

        long countedDb = 0;
        var deadline = DateTime.UtcNow.AddSeconds(90);
        await using var dataSource = NpgsqlDataSource.Create(database);
        while (DateTime.UtcNow < deadline)
        {
            await using var command = dataSource.CreateCommand("SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute");
            countedDb = (long)(await command.ExecuteScalarAsync())!;
            if (countedDb >= metrics.Accepted)
            {
                break;
            }

            await Task.Delay(1000);
        }

        context.Say($"accepted {metrics.Accepted:N0}, counted by the stream {metrics.StreamCounted:N0}, in the database {countedDb:N0}");
        var rss = BenchmarkContext.RssMb();
        await app.StopAsync();
        await context.DropDatabaseAsync(database);
        return new Dictionary<string, object>
        {
            ["benchmark"] = "e2e",
            ["offered_per_s"] = rate,
            ["achieved_per_s"] = load["achieved_per_s"],
            ["duration_s"] = load["duration_s"],
            ["accepted"] = metrics.Accepted,
            ["counted"] = metrics.StreamCounted,
            ["counted_db"] = countedDb,
            ["lost"] = metrics.Accepted - countedDb,
            ["freshness_p50_s"] = metrics.FreshnessPercentile(0.50),
            ["freshness_p99_s"] = metrics.FreshnessPercentile(0.99),
            ["ingest_p50_ms"] = load["p50_ms"],
            ["ingest_p99_ms"] = load["p99_ms"],
            ["errors"] = (long)load["errors"] + (long)load["other_status"],
            ["rss_mb"] = Math.Round(rss),
        };
    }

    /// <summary>Reads the roles' own instruments in-process: ingest outcomes, the aggregator's counted clicks, the sink's freshness.</summary>
    private sealed class Listener : IDisposable
    {
        private readonly MeterListener _listener = new();
        private readonly List<double> _freshness = [];
        private long _accepted;
        private long _streamCounted;

        public Listener()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Name is "kafkaclicks.ingest.clicks" or "kafkaclicks.aggregator.clicks" or "kafkaclicks.sink.freshness")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((instrument, value, tags, _) =>
            {
                var outcome = "";
                foreach (var tag in tags)
                {
                    if (tag.Key == "outcome")
                    {
                        outcome = tag.Value as string ?? "";
                    }
                }

                if (instrument.Name == "kafkaclicks.ingest.clicks" && outcome is "counted" or "counted_unchecked")
                {
                    Interlocked.Add(ref _accepted, value);
                }
                else if (instrument.Name == "kafkaclicks.aggregator.clicks" && outcome == "counted")
                {
                    Interlocked.Add(ref _streamCounted, value);
                }
            });
            _listener.SetMeasurementEventCallback<double>((_, value, _, _) =>
            {
                lock (_freshness)
                {
                    _freshness.Add(value);
                }
            });
            _listener.Start();
        }

        public long Accepted => Interlocked.Read(ref _accepted);

        public long StreamCounted => Interlocked.Read(ref _streamCounted);

        public double FreshnessPercentile(double p)
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
