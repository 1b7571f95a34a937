using System.Diagnostics;
using System.Diagnostics.Metrics;
using System.Globalization;
using HdrHistogram;
using KafkaClicks.Migrations;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;
using ConnectionMultiplexer = StackExchange.Redis.ConnectionMultiplexer;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// The query role over HTTP on a seeded database (kc_bench_query, reused when complete): 100,000 ads of 1,000
/// advertisers, 10,000,000 minute rows over 7 days, rollups refreshed. 32 clients send a mix of three queries for
/// 30 s: one ad's day by minute, one advertiser's last week by hour (its last hours from the minutes: the real-time
/// tail), and the top 10 ads over 5 minutes; ads and advertisers are drawn Zipf-skewed, as dashboards look at popular
/// ads more. Pass one runs with the cache off (the figures to hold against the 50 ms p99 goal), then the same mix from
/// one client for 10 s (each query's own cost, without queueing for the cores); pass two replays the same draws with
/// the Redis cache on, starting empty, and reports its hit rate. Baseline: GET /healthz at the same concurrency, same run.
/// </summary>
public sealed class QueryBenchmark : IBenchmark
{
    private const string Database = "kc_bench_query";
    private const int Ads = 100_000;
    private const int Advertisers = 1_000;
    private const int RowsPerAd = 100;
    private const long MinuteRows = (long)Ads * RowsPerAd;
    private const int Clients = 32;
    private static readonly TimeSpan Duration = TimeSpan.FromSeconds(30);
    private static readonly TimeSpan BaselineDuration = TimeSpan.FromSeconds(10);
    private static readonly string[] Types = ["ad_day_by_minute", "advertiser_week_by_hour", "top10_5m"];

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var (connectionString, anchor, reused, seedSeconds) = await PrepareSeedAsync(context);
        var clock = new ShiftedTimeProvider(DateTimeOffset.UtcNow - anchor);

        context.Say($"pass 1: {Clients} clients, {Duration.TotalSeconds:0} s of mixed queries, cache off");
        var uncached = await RunPassAsync(context, connectionString, clock, cacheEnabled: false);
        context.Say($"pass 2: the same draws with the Redis cache on, starting empty");
        await ClearCacheAsync(context.Redis);
        var cached = await RunPassAsync(context, connectionString, clock, cacheEnabled: true);

        return new Dictionary<string, object>
        {
            ["uncached"] = uncached.Figures,
            ["uncached_one_client"] = uncached.OneClient!,
            ["cached"] = cached.Figures,
            ["cache_hit_rate"] = cached.HitRate,
            ["baseline_healthz"] = uncached.Baseline!,
            ["goal_p99_ms"] = 50,
            ["clients"] = Clients,
            ["seconds"] = Duration.TotalSeconds,
            ["seed"] = new Dictionary<string, object>
            {
                ["ads"] = Ads, ["advertisers"] = Advertisers, ["minute_rows"] = MinuteRows, ["days"] = 7,
                ["reused"] = reused, ["seconds"] = seedSeconds,
            },
        };
    }

    /// <summary>
    /// Creates, migrates and seeds kc_bench_query unless a complete seed is there (the scale benchmark's baseline uses it
    /// too), and records completeThrough two minutes before the seed's anchor, as a live sink would report. Returns its
    /// connection string, its anchor (the seed's "now"), whether it was reused and the seconds the seeding took.
    /// </summary>
    internal static async Task<(string ConnectionString, DateTimeOffset Anchor, bool Reused, double Seconds)> PrepareSeedAsync(BenchmarkContext context)
    {
        await EnsureDatabaseAsync(context.PostgresAdmin, Database);
        var connectionString = new NpgsqlConnectionStringBuilder(context.PostgresAdmin) { Database = Database, MaxPoolSize = 64 }.ConnectionString;
        // Seeding and the week-long rollup refresh run longer than a command's default 30 s.
        await using var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 0 }.ConnectionString);
        await new DatabaseMigrator(dataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
        var seedWatch = Stopwatch.StartNew();
        var (anchor, reused) = await SeedAsync(context, dataSource);
        var seedSeconds = Math.Round(seedWatch.Elapsed.TotalSeconds, 1);

        // The seed is a week up to its anchor: the product sees "now" as the anchor (plus the time since the run began).
        await SetCompleteThroughAsync(dataSource, anchor.AddMinutes(-2));
        return (connectionString, anchor, reused, seedSeconds);
    }

    /// <summary>Records one aggregator task's progress marker at <paramref name="through"/>, so that completeThrough is that instant.</summary>
    internal static async Task SetCompleteThroughAsync(NpgsqlDataSource dataSource, DateTimeOffset through)
    {
        await ExecuteAsync(dataSource, "DELETE FROM stream_progress");
        await ExecuteAsync(dataSource, """
            INSERT INTO stream_progress (topic, task, partition, tasks, partitions, final_through, updated_at)
            VALUES ('clicks.minute', 0, 0, 1, 1, $1, now())
            """, through);
    }

    private static async Task<(Dictionary<string, object> Figures, Dictionary<string, object> HitRate, Dictionary<string, object>? Baseline, Dictionary<string, object>? OneClient)> RunPassAsync(
        BenchmarkContext context, string connectionString, ShiftedTimeProvider clock, bool cacheEnabled)
    {
        await using var host = await BenchQueryHost.StartAsync(context, connectionString, clock, cacheEnabled);
        using var http = host.CreateClient(Clients);

        Dictionary<string, object>? baseline = null, oneClient = null;
        var anchor = clock.GetUtcNow();
        if (!cacheEnabled)
        {
            var healthz = await LoadAsync(http, Clients, BaselineDuration, (_, _) => ("healthz", "/healthz"));
            baseline = (Dictionary<string, object>)Figures(healthz, BaselineDuration)["healthz"];

            // The same mix from one client: each query's own cost, without waiting behind the others for the two cores.
            oneClient = Figures(await LoadAsync(http, 1, BaselineDuration, (client, random) => Draw(client, random, anchor)), BaselineDuration);
        }

        using var cache = new CacheCounter();
        int[] collections = [GC.CollectionCount(0), GC.CollectionCount(1), GC.CollectionCount(2)];
        var histograms = await LoadAsync(http, Clients, Duration, (client, random) => Draw(client, random, anchor));
        var figures = Figures(histograms, Duration);
        figures["gc_collections"] = new Dictionary<string, object>
        {
            ["gen0"] = GC.CollectionCount(0) - collections[0],
            ["gen1"] = GC.CollectionCount(1) - collections[1],
            ["gen2"] = GC.CollectionCount(2) - collections[2],
        };
        var lookups = cache.Hits + cache.Misses + cache.Bypasses;
        var hitRate = new Dictionary<string, object>
        {
            ["hits"] = cache.Hits,
            ["misses"] = cache.Misses,
            ["bypasses"] = cache.Bypasses,
            ["errors"] = cache.Errors,
            ["of_all_requests"] = lookups == 0 ? 0 : Math.Round((double)cache.Hits / lookups, 3),
            ["of_final_ranges"] = cache.Hits + cache.Misses == 0 ? 0 : Math.Round((double)cache.Hits / (cache.Hits + cache.Misses), 3),
        };
        return (figures, hitRate, baseline, oneClient);
    }

    /// <summary>One request of the mix: the client's n-th draw from a per-client seeded generator, so both passes send the same requests.</summary>
    private static (string Type, string Path) Draw(int client, Random random, DateTimeOffset anchor)
    {
        var type = Types[random.Next(Types.Length)];
        switch (type)
        {
            case "ad_day_by_minute":
                var ad = Zipf.Ads.Next(random);
                var day = new DateTimeOffset(anchor.UtcDateTime.Date, TimeSpan.Zero).AddDays(-random.Next(7));
                return (type, $"/v1/ads/{ad}/clicks?granularity=1m&from={Iso(day)}&to={Iso(day.AddDays(1))}");
            case "advertiser_week_by_hour":
                var advertiser = Zipf.Advertisers.Next(random);
                return (type, $"/v1/advertisers/{advertiser}/clicks?granularity=1h&from={Iso(anchor.AddDays(-7))}");
            default:
                return (type, "/v1/top?window=5m&limit=10");
        }
    }

    internal static string Iso(DateTimeOffset t) => Uri.EscapeDataString(t.ToString("yyyy-MM-ddTHH:mm:ssZ", CultureInfo.InvariantCulture));

    internal static async Task<Dictionary<string, LongHistogram>> LoadAsync(
        HttpClient http, int clientCount, TimeSpan duration, Func<int, Random, (string Type, string Path)> draw)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var clients = Enumerable.Range(0, clientCount).Select(client => Task.Run(async () =>
        {
            var random = new Random(client);
            var histograms = new Dictionary<string, LongHistogram>(StringComparer.Ordinal);
            // Each client drains bodies into a buffer of its own, as wrk does: the load generator shares the process
            // with the role, and buffering every body into a fresh array would add its garbage to the role's.
            var body = new byte[64 * 1024];
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var (type, path) = draw(client, random);
                var started = Stopwatch.GetTimestamp();
                using var response = await http.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead);
                if (!response.IsSuccessStatusCode)
                {
                    throw new InvalidOperationException($"{path}: {(int)response.StatusCode} {await response.Content.ReadAsStringAsync()}");
                }

                await using (var stream = await response.Content.ReadAsStreamAsync())
                {
                    while (await stream.ReadAsync(body) > 0)
                    {
                    }
                }

                var elapsed = Stopwatch.GetTimestamp() - started;

                if (!histograms.TryGetValue(type, out var histogram))
                {
                    histograms[type] = histogram = new LongHistogram(TimeStamp.Minutes(1), 3);
                }

                histogram.RecordValue(elapsed);
            }

            return histograms;
        })).ToList();

        var merged = new Dictionary<string, LongHistogram>(StringComparer.Ordinal);
        foreach (var histograms in await Task.WhenAll(clients))
        {
            foreach (var (type, histogram) in histograms)
            {
                if (merged.TryGetValue(type, out var total))
                {
                    total.Add(histogram);
                }
                else
                {
                    merged[type] = histogram;
                }
            }
        }

        return merged;
    }

    private static Dictionary<string, object> Figures(Dictionary<string, LongHistogram> histograms, TimeSpan duration)
    {
        var figures = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (type, histogram) in histograms.OrderBy(h => h.Key, StringComparer.Ordinal))
        {
            figures[type] = new Dictionary<string, object>
            {
                ["qps"] = Math.Round(histogram.TotalCount / duration.TotalSeconds, 1),
                ["p50_ms"] = Millis(histogram.GetValueAtPercentile(50)),
                ["p99_ms"] = Millis(histogram.GetValueAtPercentile(99)),
                ["max_ms"] = Millis(histogram.GetMaxValue()),
                ["requests"] = histogram.TotalCount,
            };
        }

        figures["total_qps"] = Math.Round(histograms.Values.Sum(h => h.TotalCount) / duration.TotalSeconds, 1);
        return figures;
    }

    internal static double Millis(long ticks) => Math.Round(ticks * 1000.0 / Stopwatch.Frequency, 2);

    /// <summary>Seeds the database unless a complete seed is there; returns the seed's anchor (its "now").</summary>
    private static async Task<(DateTimeOffset Anchor, bool Reused)> SeedAsync(BenchmarkContext context, NpgsqlDataSource dataSource)
    {
        await ExecuteAsync(dataSource, "CREATE TABLE IF NOT EXISTS bench_seed (anchor timestamptz NOT NULL, minute_rows bigint NOT NULL)");
        await using (var check = dataSource.CreateCommand("SELECT anchor FROM bench_seed WHERE minute_rows = $1"))
        {
            check.Parameters.Add(new NpgsqlParameter<long> { TypedValue = MinuteRows });
            if (await check.ExecuteScalarAsync() is DateTime seeded)
            {
                context.Say($"reusing the seed in {Database} (anchor {seeded:u})");
                return (new DateTimeOffset(DateTime.SpecifyKind(seeded, DateTimeKind.Utc)), true);
            }
        }

        var now = DateTimeOffset.UtcNow;
        var anchor = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero);
        context.Say($"seeding {Database}: {Advertisers:N0} advertisers, {Ads:N0} ads, {MinuteRows:N0} minute rows over 7 days up to {anchor:u}");
        await ExecuteAsync(dataSource, """
            TRUNCATE bench_seed, ad_clicks_minute, ad_clicks_hourly, ad_clicks_daily, rollup_dirty, rollup_ad_changes, stream_progress, ads, advertisers;
            INSERT INTO advertisers (advertiser_id, name) SELECT g, 'Bench advertiser ' || g FROM generate_series(1, 1000) g;
            INSERT INTO ads (ad_id, advertiser_id, redirect_url)
            SELECT g, (g - 1) % 1000 + 1, 'https://bench.example/ad/' || g FROM generate_series(1, 100000) g;
            """);
        await ExecuteAsync(dataSource, "SELECT ensure_ad_clicks_minute_partitions($1 - interval '8 days', $1 + interval '1 day')", anchor);

        // 100 distinct minutes per ad, spread over the week with a per-ad phase; the last two minutes partial. Written
        // oldest first and in time order within each 100-minute slice, as the sink writes them.
        for (var j = RowsPerAd - 1; j >= 0; j--)
        {
            await ExecuteAsync(dataSource, """
                INSERT INTO ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at)
                SELECT ad, m, 0, 1 + (ad * $2) % 20, m < $1 - interval '2 minutes', $1
                FROM generate_series(1, 100000) AS ad, LATERAL (SELECT $1 - make_interval(mins => $2 * 100 + (ad * 37) % 100)) AS t(m)
                ORDER BY m, ad
                """, anchor, j);
        }

        await ExecuteAsync(dataSource, """
            INSERT INTO rollup_dirty (hour)
            SELECT generate_series(date_bin('1 hour', $1 - interval '7 days', timestamptz '2000-01-01'), $1, interval '1 hour')
            ON CONFLICT DO NOTHING
            """, anchor);
        context.Say("refreshing the rollups through the sink's refresh job");
        var options = Options.Create(new SinkOptions());
        await new RollupRefreshJob(dataSource, options, TimeProvider.System, NullLogger<RollupRefreshJob>.Instance).RunOnceAsync(CancellationToken.None);
        context.Say("vacuum analyze");
        await ExecuteAsync(dataSource, "VACUUM ANALYZE");
        await ExecuteAsync(dataSource, "INSERT INTO bench_seed (anchor, minute_rows) SELECT $1, count(*) FROM ad_clicks_minute", anchor);
        return (anchor, false);
    }

    /// <summary>Removes this database's cached answers (a previous run's would otherwise count as hits).</summary>
    private static async Task ClearCacheAsync(string redis)
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(redis);
        var database = multiplexer.GetDatabase();
        foreach (var server in multiplexer.GetServers())
        {
            await foreach (var key in server.KeysAsync(pattern: $"kafkaclicks:query:v1:*/{Database}:*"))
            {
                await database.KeyDeleteAsync(key);
            }
        }
    }

    /// <summary>Creates the database <paramref name="name"/> on the local server unless it exists (seeds live there across runs).</summary>
    internal static async Task EnsureDatabaseAsync(string adminConnectionString, string name)
    {
        await using var admin = new NpgsqlConnection(adminConnectionString);
        await admin.OpenAsync();
        await using var exists = new NpgsqlCommand($"SELECT 1 FROM pg_database WHERE datname = '{name}'", admin);
        if (await exists.ExecuteScalarAsync() is null)
        {
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }
    }

    internal static async Task ExecuteAsync(NpgsqlDataSource dataSource, string sql, params object[] parameters)
    {
        await using var command = dataSource.CreateCommand(sql);
        foreach (var parameter in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = parameter });
        }

        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The system clock moved back by a fixed offset, so a seed made earlier looks live.</summary>
    internal sealed class ShiftedTimeProvider(TimeSpan shift) : TimeProvider
    {
        public override DateTimeOffset GetUtcNow() => base.GetUtcNow() - shift;
    }

    /// <summary>Zipf-distributed ids 1..n (s = 1): id 1 is drawn most, as popular ads and advertisers are looked at most.</summary>
    private sealed class Zipf
    {
        public static readonly Zipf Ads = new(QueryBenchmark.Ads);
        public static readonly Zipf Advertisers = new(QueryBenchmark.Advertisers);
        private readonly double[] _cumulative;

        private Zipf(int n)
        {
            _cumulative = new double[n];
            var sum = 0.0;
            for (var i = 0; i < n; i++)
            {
                sum += 1.0 / (i + 1);
                _cumulative[i] = sum;
            }

            for (var i = 0; i < n; i++)
            {
                _cumulative[i] /= sum;
            }
        }

        public long Next(Random random)
        {
            var index = Array.BinarySearch(_cumulative, random.NextDouble());
            return (index >= 0 ? index : ~index) + 1;
        }
    }

    /// <summary>Counts the query role's cache lookups by result while it lives.</summary>
    private sealed class CacheCounter : IDisposable
    {
        private readonly MeterListener _listener = new();
        private long _hits, _misses, _bypasses, _errors;

        public CacheCounter()
        {
            _listener.InstrumentPublished = (instrument, listener) =>
            {
                if (instrument.Meter.Name == "KafkaClicks.Query" && instrument.Name == "kafkaclicks.query.cache")
                {
                    listener.EnableMeasurementEvents(instrument);
                }
            };
            _listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
            {
                foreach (var tag in tags)
                {
                    switch (tag.Key == "result" ? tag.Value as string : null)
                    {
                        case "hit": Interlocked.Add(ref _hits, value); break;
                        case "miss": Interlocked.Add(ref _misses, value); break;
                        case "bypass": Interlocked.Add(ref _bypasses, value); break;
                        case "error": Interlocked.Add(ref _errors, value); break;
                    }
                }
            });
            _listener.Start();
        }

        public long Hits => Interlocked.Read(ref _hits);

        public long Misses => Interlocked.Read(ref _misses);

        public long Bypasses => Interlocked.Read(ref _bypasses);

        public long Errors => Interlocked.Read(ref _errors);

        public void Dispose() => _listener.Dispose();
    }
}
