using System.Diagnostics;
using System.Globalization;
using HdrHistogram;
using KafkaClicks.Contracts;
using KafkaClicks.Migrations;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// Issue #22's scale: a seed of BENCH_ADS ads (10,000,000) over one advertiser per 100 ads, advertiser 1 owning
/// 100,000 of them, with BENCH_HOURS (24) of minute rows up to the seed's anchor (Zipf-skewed clicks, 3,000/s on
/// average over a day with the last hour the peak at 10,000/s) and BENCH_ROLLUP_DAYS (30) days of rollups before them
/// (daily per ad and hourly per advertiser: hourly per ad would not fit), generated in SQL once and reused while its
/// parameters are the same (kc_bench_scale). Then, while a live 10,000 clicks/s stream's minute counts are written
/// through the sink's <see cref="MinuteCountWriter"/> and the sink's <see cref="RollupRefreshJob"/> runs every
/// interval, 32 clients send every query route for BENCH_DURATION_S (30) seconds. Baseline in the same run: the same
/// routes, live load and refresh on the query benchmark's seed (100,000 ads, kc_bench_query).
/// </summary>
public sealed class ScaleBenchmark : IBenchmark
{
    private const string Database = "kc_bench_scale";
    private const int Clients = 32;
    private const int BigAdvertiserAds = 100_000;
    private const int AdsPerAdvertiser = 100;
    private const long AverageClicksPerSecond = 3_000;
    private const long PeakClicksPerSecond = 10_000;
    private const long LiveClicksPerSecond = 10_000;

    /// <summary>
    /// Popularity rank to ad id: rank r is ad ((r - 1) * Spread) mod ads + 1, a permutation (Spread is a prime), so that
    /// popular ads are spread over every advertiser rather than all owned by the first.
    /// </summary>
    private const long Spread = 2_654_435_761;

    /// <summary>The p99_ms of a route none of whose requests finished in the pass (JSON has no infinity).</summary>
    private const double NoAnswer = -1;

    private static readonly TimeSpan EmitInterval = TimeSpan.FromSeconds(10);
    private static readonly TimeSpan Grace = TimeSpan.FromSeconds(30);

    // Off-peak rate: a day at 3,000/s on average with one hour at 10,000/s.
    private static readonly long OffPeakClicksPerMinute = (AverageClicksPerSecond * 86_400 - PeakClicksPerSecond * 3_600) / (23 * 60);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var ads = Knob("BENCH_ADS", 10_000_000);
        var hours = (int)Knob("BENCH_HOURS", 24);
        var rollupDays = (int)Knob("BENCH_ROLLUP_DAYS", 30);
        var duration = TimeSpan.FromSeconds(Knob("BENCH_DURATION_S", 30));
        if (ads < 2 * BigAdvertiserAds || hours < 1 || rollupDays < 0)
        {
            throw new ArgumentException($"BENCH_ADS must be at least {2 * BigAdvertiserAds}, BENCH_HOURS at least 1, BENCH_ROLLUP_DAYS at least 0");
        }

        context.Say("baseline seed: the query benchmark's (100,000 ads)");
        var (baselineConnection, baselineAnchor, _, _) = await QueryBenchmark.PrepareSeedAsync(context);
        var seed = await PrepareSeedAsync(context, ads, hours, rollupDays);

        context.Say($"baseline: {Clients} clients, {duration.TotalSeconds:0} s of every route on the 100,000-ad seed, live load and refresh running");
        var baseline = await RunPassAsync(context, baselineConnection, baselineAnchor, 100_000, duration, restoreSeed: true);
        context.Say($"scale: the same on the {ads:N0}-ad seed");
        var scale = await RunPassAsync(context, seed.ConnectionString, seed.Anchor, ads, duration, restoreSeed: false);

        var slowest = ((Dictionary<string, object>)scale["routes"]).Values.OfType<Dictionary<string, object>>().Max(r => (double)r["p99_ms"] is var p99 && p99 == NoAnswer ? double.PositiveInfinity : p99);
        return new Dictionary<string, object>
        {
            ["seed"] = seed.Figures,
            ["scale"] = scale,
            ["baseline_100k_ads"] = baseline,
            ["goal_p99_ms"] = 50,
            ["goal_met"] = slowest <= 50 && (bool)((Dictionary<string, object>)scale["rollup_refresh"])["keeps_up"],
            ["clients"] = Clients,
            ["seconds"] = duration.TotalSeconds,
            ["live_clicks_per_s"] = LiveClicksPerSecond,
        };
    }

    private static long Knob(string name, long fallback) =>
        Environment.GetEnvironmentVariable(name) is { Length: > 0 } value ? long.Parse(value, CultureInfo.InvariantCulture) : fallback;

    /// <summary>Ad id of popularity rank <paramref name="rank"/> (1 = most clicked) among <paramref name="ads"/>.</summary>
    private static long AdOfRank(long rank, long ads) => (rank - 1) * (Spread % ads) % ads + 1;

    /// <summary>
    /// One pass over a seed: the query role, the live load and the rollup refresh start, 32 clients send a uniform mix of
    /// the routes, then everything stops and the figures of each are returned. <paramref name="restoreSeed"/>: remove the
    /// live rows and refresh their hours afterwards, for a seed another benchmark reads as it was made (the query
    /// benchmark's); a seed of this benchmark's own is cleared of them at the start of its next pass instead.
    /// </summary>
    private static async Task<Dictionary<string, object>> RunPassAsync(
        BenchmarkContext context, string connectionString, DateTimeOffset anchor, long ads, TimeSpan duration, bool restoreSeed)
    {
        // The live load and the refresh connect as the sink role does (the product's connection defaults).
        await using var dataSource = NpgsqlDataSource.Create(
            ServiceDefaultsExtensions.WithPoolDefaults(new NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 0 }.ConnectionString));
        // A previous run's live rows (after the anchor) would make this run's inserts into updates: remove them, marking
        // their rollups dirty as any writer of minutes does, and bring the rollups back to the seed before the pass (a
        // previous run may have stopped with marks left, its own or an older build's), so the pass starts clean.
        var clock = new QueryBenchmark.ShiftedTimeProvider(DateTimeOffset.UtcNow - anchor);
        await QueryBenchmark.ExecuteAsync(dataSource, """
            WITH removed AS (DELETE FROM ad_clicks_minute WHERE minute >= $1 RETURNING ad_id, minute)
            SELECT mark_rollups_dirty(array_agg(date_bin('1 hour', minute, timestamptz '2000-01-01')), array_agg(ad_id)) FROM removed
            """, anchor);
        await QueryBenchmark.ExecuteAsync(dataSource, "SELECT ensure_ad_clicks_minute_partitions($1, $1 + interval '2 days')", anchor);
        var settle = Stopwatch.StartNew();
        var settled = await new RollupRefreshJob(dataSource, Options.Create(new SinkOptions()), clock, NullLogger<RollupRefreshJob>.Instance).RunOnceAsync(CancellationToken.None);
        context.Say($"rollups back to the seed: {settled:N0} marks refreshed in {settle.Elapsed.TotalSeconds:0} s");

        await using var host = await BenchQueryHost.StartAsync(context, connectionString, clock, cacheEnabled: false);
        using var http = host.CreateClient(Clients);
        using var stop = new CancellationTokenSource();
        var live = new LiveLoad(dataSource, clock, ads);
        var liveTask = Task.Run(() => live.RunAsync(stop.Token));
        var refresh = new RefreshCycles(dataSource, clock);
        var refreshTask = Task.Run(() => refresh.RunAsync(stop.Token));

        var routes = Routes(ads);
        var (histograms, errors) = await LoadAsync(http, duration, (random, now) =>
        {
            var (name, path) = routes[random.Next(routes.Count)];
            return (name, path(random, now));
        }, clock);

        // Each route alone, from one client, three times (live load and refresh still running): its own cost, without
        // queueing behind the others for the database slots.
        var alone = new Dictionary<string, (double MedianMs, int Errors)>(StringComparer.Ordinal);
        var aloneRandom = new Random(1);
        foreach (var (name, path) in routes)
        {
            var times = new List<double>();
            var failed = 0;
            for (var i = 0; i < 3; i++)
            {
                var started = Stopwatch.GetTimestamp();
                using var response = await http.GetAsync(new Uri(path(aloneRandom, clock.GetUtcNow()), UriKind.Relative));
                await response.Content.ReadAsByteArrayAsync();
                times.Add(QueryBenchmark.Millis(Stopwatch.GetTimestamp() - started));
                failed += response.IsSuccessStatusCode ? 0 : 1;
            }

            alone[name] = (times.Order().ElementAt(1), failed);
        }

        await stop.CancelAsync();
        await Task.WhenAll(liveTask, refreshTask);
        if (restoreSeed)
        {
            context.Say("removing the live rows from the seed and refreshing their hours");
            await QueryBenchmark.ExecuteAsync(dataSource, "DELETE FROM ad_clicks_minute WHERE minute >= $1", anchor);
            await QueryBenchmark.ExecuteAsync(dataSource, """
                INSERT INTO rollup_dirty (hour) SELECT generate_series(date_bin('1 hour', $1, timestamptz '2000-01-01'), $2, interval '1 hour')
                ON CONFLICT DO NOTHING
                """, anchor, clock.GetUtcNow());
            await new RollupRefreshJob(dataSource, Options.Create(new SinkOptions()), clock, NullLogger<RollupRefreshJob>.Instance).RunOnceAsync(CancellationToken.None);
        }

        var figures = new Dictionary<string, object>(StringComparer.Ordinal);
        foreach (var (name, _) in routes)
        {
            var histogram = histograms.GetValueOrDefault(name);
            figures[name] = histogram is null ? new Dictionary<string, object> { ["requests"] = 0, ["p99_ms"] = NoAnswer } : new Dictionary<string, object>
            {
                ["p50_ms"] = QueryBenchmark.Millis(histogram.GetValueAtPercentile(50)),
                ["p99_ms"] = QueryBenchmark.Millis(histogram.GetValueAtPercentile(99)),
                ["max_ms"] = QueryBenchmark.Millis(histogram.GetMaxValue()),
                ["requests"] = histogram.TotalCount,
                ["errors"] = errors.GetValueOrDefault(name),
                ["alone_median_ms"] = alone[name].MedianMs,
                ["alone_errors"] = alone[name].Errors,
            };
        }

        return new Dictionary<string, object>
        {
            ["ads"] = ads,
            ["routes"] = figures,
            ["total_qps"] = Math.Round(histograms.Values.Sum(h => h.TotalCount) / duration.TotalSeconds, 1),
            ["live_load"] = live.Figures(),
            ["rollup_refresh"] = refresh.Figures(),
        };
    }

    /// <summary>
    /// Every route the issue names, each a path drawn from the client's generator at the shifted "now": one ad (Zipf by
    /// popularity) by minute over the last hour, by hour over the last day and by day over the last 30 days; advertiser
    /// 1 (100,000 ads at scale, 100 in the baseline) over the same ranges, and with a per-ad breakdown over the last
    /// bucket and the current one (the most a breakdown of 100,000 ads may hold is Query:MaxBreakdownPoints, 200,000
    /// points); the top 10 over 1, 5, 15 and 60 minutes, of every ad and of advertiser 1's.
    /// </summary>
    private static List<(string Name, Func<Random, DateTimeOffset, string> Path)> Routes(long ads)
    {
        var zipf = new LogUniform(ads);
        var routes = new List<(string, Func<Random, DateTimeOffset, string>)>
        {
            ("ad_1m_last_hour", (r, now) => $"/v1/ads/{AdOfRank(zipf.Next(r), ads)}/clicks?granularity=1m&from={QueryBenchmark.Iso(now.AddHours(-1))}"),
            ("ad_1h_last_day", (r, now) => $"/v1/ads/{AdOfRank(zipf.Next(r), ads)}/clicks?granularity=1h&from={QueryBenchmark.Iso(now.AddDays(-1))}"),
            ("ad_1d_last_30_days", (r, now) => $"/v1/ads/{AdOfRank(zipf.Next(r), ads)}/clicks?granularity=1d&from={QueryBenchmark.Iso(now.AddDays(-30))}"),
        };
        foreach (var (granularity, span, name) in new[] { ("1m", TimeSpan.FromHours(1), "last_hour"), ("1h", TimeSpan.FromDays(1), "last_day"), ("1d", TimeSpan.FromDays(30), "last_30_days") })
        {
            routes.Add(($"advertiser_{granularity}_{name}", (_, now) => $"/v1/advertisers/1/clicks?granularity={granularity}&from={QueryBenchmark.Iso(now - span)}"));
            var bucket = TimeSpan.FromMinutes(granularity switch { "1m" => 1, "1h" => 60, _ => 1440 });
            routes.Add(($"advertiser_{granularity}_breakdown_2_buckets", (_, now) => $"/v1/advertisers/1/clicks?granularity={granularity}&breakdown=ad&from={QueryBenchmark.Iso(now - bucket)}"));
        }

        foreach (var window in new[] { 1, 5, 15, 60 })
        {
            routes.Add(($"top10_{window}m", (_, _) => $"/v1/top?window={window}m&limit=10"));
            routes.Add(($"top10_{window}m_advertiser", (_, _) => $"/v1/top?window={window}m&limit=10&advertiserId=1"));
        }

        return routes;
    }

    /// <summary>
    /// Clients sending requests back to back for <paramref name="duration"/>; unlike the query benchmark's load, an
    /// error answer (503 query-timeout, 503 overloaded) is counted for its route rather than ending the run.
    /// </summary>
    private static async Task<(Dictionary<string, LongHistogram> Histograms, Dictionary<string, long> Errors)> LoadAsync(
        HttpClient http, TimeSpan duration, Func<Random, DateTimeOffset, (string Name, string Path)> draw, TimeProvider clock)
    {
        var deadline = Stopwatch.GetTimestamp() + (long)(duration.TotalSeconds * Stopwatch.Frequency);
        var clients = Enumerable.Range(0, Clients).Select(client => Task.Run(async () =>
        {
            var random = new Random(client);
            var histograms = new Dictionary<string, LongHistogram>(StringComparer.Ordinal);
            var errors = new Dictionary<string, long>(StringComparer.Ordinal);
            var body = new byte[64 * 1024];
            while (Stopwatch.GetTimestamp() < deadline)
            {
                var (name, path) = draw(random, clock.GetUtcNow());
                var started = Stopwatch.GetTimestamp();
                using (var response = await http.GetAsync(new Uri(path, UriKind.Relative), HttpCompletionOption.ResponseHeadersRead))
                {
                    await using var stream = await response.Content.ReadAsStreamAsync();
                    while (await stream.ReadAsync(body) > 0)
                    {
                    }

                    if ((int)response.StatusCode is >= 400 and < 500)
                    {
                        throw new InvalidOperationException($"{path}: {(int)response.StatusCode}: the benchmark sent a request the API refuses");
                    }

                    if (!response.IsSuccessStatusCode)
                    {
                        errors[name] = errors.GetValueOrDefault(name) + 1;
                    }
                }

                if (!histograms.TryGetValue(name, out var histogram))
                {
                    histograms[name] = histogram = new LongHistogram(TimeStamp.Minutes(1), 3);
                }

                histogram.RecordValue(Stopwatch.GetTimestamp() - started);
            }

            return (histograms, errors);
        })).ToList();

        var merged = new Dictionary<string, LongHistogram>(StringComparer.Ordinal);
        var allErrors = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var (histograms, errors) in await Task.WhenAll(clients))
        {
            foreach (var (name, histogram) in histograms)
            {
                if (merged.TryGetValue(name, out var total))
                {
                    total.Add(histogram);
                }
                else
                {
                    merged[name] = histogram;
                }
            }

            foreach (var (name, count) in errors)
            {
                allErrors[name] = allErrors.GetValueOrDefault(name) + count;
            }
        }

        return (merged, allErrors);
    }

    private sealed record Seed(string ConnectionString, DateTimeOffset Anchor, Dictionary<string, object> Figures);

    /// <summary>Creates and migrates kc_bench_scale, seeds it unless a complete seed of the same parameters is there, and measures its size.</summary>
    private static async Task<Seed> PrepareSeedAsync(BenchmarkContext context, long ads, int hours, int rollupDays)
    {
        await QueryBenchmark.EnsureDatabaseAsync(context.PostgresAdmin, Database);
        var connectionString = new NpgsqlConnectionStringBuilder(context.PostgresAdmin) { Database = Database, MaxPoolSize = 64 }.ConnectionString;
        // Seeding statements run for minutes and group millions of clicks each: no command timeout, room to hash in memory.
        await using var dataSource = NpgsqlDataSource.Create(
            new NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 0, Options = "-c work_mem=256MB" }.ConnectionString);
        await new DatabaseMigrator(dataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
        await QueryBenchmark.ExecuteAsync(dataSource, """
            CREATE TABLE IF NOT EXISTS bench_scale_seed (
                ads bigint NOT NULL, hours integer NOT NULL, rollup_days integer NOT NULL, anchor timestamptz NOT NULL,
                seconds jsonb NOT NULL)
            """);

        DateTimeOffset anchor;
        Dictionary<string, double> seconds;
        var reused = false;
        await using (var check = dataSource.CreateCommand("SELECT anchor, seconds::text FROM bench_scale_seed WHERE ads = $1 AND hours = $2 AND rollup_days = $3"))
        {
            check.Parameters.Add(new NpgsqlParameter<long> { TypedValue = ads });
            check.Parameters.Add(new NpgsqlParameter<int> { TypedValue = hours });
            check.Parameters.Add(new NpgsqlParameter<int> { TypedValue = rollupDays });
            await using var reader = await check.ExecuteReaderAsync();
            if (await reader.ReadAsync())
            {
                anchor = reader.GetFieldValue<DateTimeOffset>(0);
                seconds = System.Text.Json.JsonSerializer.Deserialize<Dictionary<string, double>>(reader.GetString(1))!;
                reused = true;
                context.Say($"reusing the seed in {Database} ({ads:N0} ads, {hours} hours of minutes, {rollupDays} days of rollups, anchor {anchor:u})");
            }
            else
            {
                (anchor, seconds) = (default, []);
            }
        }

        if (!reused)
        {
            (anchor, seconds) = await SeedAsync(context, dataSource, ads, hours, rollupDays);
        }

        // completeThrough two minutes before the anchor, as a live sink would report.
        await QueryBenchmark.SetCompleteThroughAsync(dataSource, anchor.AddMinutes(-2));

        var sizes = new Dictionary<string, object>(StringComparer.Ordinal);
        long totalRows = 0, totalBytes = 0;
        foreach (var table in new[] { Tables.Ads, Tables.AdClicksMinute, Tables.AdClicksHourly, Tables.AdClicksDaily, Tables.AdvertiserClicksHourly })
        {
            var (rows, bytes) = await SizeAsync(dataSource, table);
            sizes[table] = new Dictionary<string, object> { ["rows"] = rows, ["bytes"] = bytes };
            totalRows += rows;
            totalBytes += bytes;
        }

        var minuteBytes = (long)((Dictionary<string, object>)sizes[Tables.AdClicksMinute])["bytes"];
        var minuteRows = (long)((Dictionary<string, object>)sizes[Tables.AdClicksMinute])["rows"];
        var dailyBytes = (long)((Dictionary<string, object>)sizes[Tables.AdClicksDaily])["bytes"];
        var advertiserBytes = (long)((Dictionary<string, object>)sizes[Tables.AdvertiserClicksHourly])["bytes"];
        var figures = new Dictionary<string, object>
        {
            ["ads"] = ads,
            ["advertisers"] = ads / AdsPerAdvertiser,
            ["big_advertiser_ads"] = BigAdvertiserAds,
            ["minute_hours"] = hours,
            ["rollup_days"] = rollupDays,
            ["rows"] = totalRows,
            ["bytes"] = totalBytes,
            ["tables"] = sizes,
            // A day of minutes as seeded: the minute rows' bytes scaled from the seeded hours (the last is the peak) to 24.
            ["minute_bytes_per_day"] = hours >= 24 ? minuteBytes * 24 / hours : (long)(minuteBytes * MinuteDayShare(hours)),
            ["minute_rows_per_day"] = hours >= 24 ? minuteRows * 24 / hours : (long)(minuteRows * MinuteDayShare(hours)),
            ["rollup_bytes_per_day"] = (dailyBytes + advertiserBytes) / Math.Max(1, rollupDays + (hours + 23) / 24),
            ["anchor"] = anchor,
            ["reused"] = reused,
            ["build_minutes"] = seconds.ToDictionary(s => s.Key, s => Math.Round(s.Value / 60, 2)),
        };
        return new Seed(connectionString, anchor, figures);
    }

    /// <summary>A day of minutes over the <paramref name="hours"/> seeded (the last the peak hour), in clicks.</summary>
    private static double MinuteDayShare(int hours) =>
        (23.0 * OffPeakClicksPerMinute + PeakClicksPerSecond * 60) / ((hours - 1) * OffPeakClicksPerMinute + PeakClicksPerSecond * 60);

    /// <summary>Rows, and bytes of the table with its indexes (a partitioned table's: its partitions').</summary>
    private static async Task<(long Rows, long Bytes)> SizeAsync(NpgsqlDataSource dataSource, string table)
    {
        await using var command = dataSource.CreateCommand($"""
            SELECT (SELECT count(*) FROM {table}),
                   CASE WHEN c.relkind = 'p' THEN (SELECT sum(pg_total_relation_size(relid)) FROM pg_partition_tree(c.oid))
                        ELSE pg_total_relation_size(c.oid) END::bigint
            FROM pg_class c WHERE c.oid = '{table}'::regclass
            """);
        await using var reader = await command.ExecuteReaderAsync();
        await reader.ReadAsync();
        return (reader.GetInt64(0), reader.GetInt64(1));
    }

    /// <summary>Seeds the database (everything in it first removed); returns the anchor and the seconds each part took.</summary>
    private static async Task<(DateTimeOffset Anchor, Dictionary<string, double> Seconds)> SeedAsync(
        BenchmarkContext context, NpgsqlDataSource dataSource, long ads, int hours, int rollupDays)
    {
        var now = DateTimeOffset.UtcNow;
        var anchor = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero);
        var first = anchor.AddHours(-hours);
        var advertisers = ads / AdsPerAdvertiser;
        var seconds = new Dictionary<string, double>(StringComparer.Ordinal);
        var watch = Stopwatch.StartNew();
        context.Say($"seeding {Database}: {advertisers:N0} advertisers, {ads:N0} ads, {hours} hours of minutes up to {anchor:u}, {rollupDays} days of rollups before");
        await QueryBenchmark.ExecuteAsync(dataSource, """
            TRUNCATE bench_scale_seed, ad_clicks_minute, ad_clicks_hourly, ad_clicks_daily, advertiser_clicks_hourly, rollup_dirty, rollup_ad_changes, stream_progress,
                ads, ad_tombstones, advertisers;
            """);
        await QueryBenchmark.ExecuteAsync(dataSource, "INSERT INTO advertisers (advertiser_id, name) SELECT g, 'Bench advertiser ' || g FROM generate_series(1, $1) g", advertisers);
        // Advertiser 1 owns ads 1..100,000; the others share the rest, about 100 each.
        await QueryBenchmark.ExecuteAsync(dataSource, """
            INSERT INTO ads (ad_id, advertiser_id, redirect_url)
            SELECT g, CASE WHEN g <= $2 THEN 1 ELSE 2 + (g - $2 - 1) % ($3 - 1) END, 'https://bench.example/ad/' || g
            FROM generate_series(1, $1) g
            """, ads, (long)BigAdvertiserAds, advertisers);
        seconds["ads"] = Lap(watch);
        context.Say($"ads: {seconds["ads"]:0} s");

        // Minute rows: each click draws its ad's popularity rank log-uniformly on [1, ads + 1) (Zipf with exponent 1, so
        // rank r is drawn about twice as often as rank 2r), then clicks are counted per (ad, minute), as the aggregator
        // does. Ten minutes per statement, oldest first, each ordered by minute and ad, as the sink writes them.
        await QueryBenchmark.ExecuteAsync(dataSource, "SELECT ensure_ad_clicks_minute_partitions($1, $2 + interval '2 days')", first.AddDays(-1), anchor);
        var peak = anchor.AddHours(-1);
        for (var from = first; from < anchor; from = from.AddMinutes(10))
        {
            await QueryBenchmark.ExecuteAsync(dataSource, """
                INSERT INTO ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at)
                SELECT (c.rank - 1) * ($2 % $1) % $1 + 1, c.m, 0, count(*), c.m < $5 - interval '2 minutes', c.m + interval '90 seconds'
                FROM (
                    SELECT m, least($1, floor(exp(random() * ln($1 + 1)))::bigint) AS rank
                    FROM generate_series($3, $4 - interval '1 minute', interval '1 minute') AS m,
                         LATERAL generate_series(1, CASE WHEN m >= $6 THEN $7 ELSE $8 END) AS click
                ) c
                GROUP BY c.m, c.rank
                ORDER BY 2, 1
                """, ads, Spread, from, Min(from.AddMinutes(10), anchor), anchor, peak, PeakClicksPerSecond * 60, OffPeakClicksPerMinute);
            if ((from - first).Ticks % TimeSpan.TicksPerHour == 0)
            {
                context.Say($"minutes through {from:u} ({watch.Elapsed.TotalSeconds:0} s)");
            }
        }

        seconds["minute_rows"] = Lap(watch);

        // Their rollups through the sink's own refresh: every seeded hour marked dirty, then one cycle of the job.
        await QueryBenchmark.ExecuteAsync(dataSource, """
            INSERT INTO rollup_dirty (hour)
            SELECT generate_series(date_bin('1 hour', $1, timestamptz '2000-01-01'), $2, interval '1 hour')
            ON CONFLICT DO NOTHING
            """, first, anchor);
        context.Say("refreshing the seeded hours' rollups through the sink's refresh job");
        await new RollupRefreshJob(dataSource, Options.Create(new SinkOptions()), TimeProvider.System, NullLogger<RollupRefreshJob>.Instance)
            .RunOnceAsync(CancellationToken.None);
        seconds["minute_rollups"] = Lap(watch);

        // Older days: rollups only (minute rows that old would be past nothing the routes read). Per ad per day, the
        // clicks a day at 3,000/s gives its rank (the same log-uniform law, rounded at random so the sums hold), and per
        // advertiser per hour a 24th of its ads' day: hourly rows per ad would not fit (10,000,000 x 720).
        var firstMinuteDay = new DateTimeOffset(first.UtcDateTime.Date, TimeSpan.Zero);
        var inverse = ModularInverse(Spread % ads, ads);
        for (var d = 1; d <= rollupDays; d++)
        {
            var day = firstMinuteDay.AddDays(-d);
            await QueryBenchmark.ExecuteAsync(dataSource, """
                INSERT INTO ad_clicks_daily (ad_id, day, clicks)
                SELECT ad, $3, c FROM (
                    SELECT ad, floor($4 * ln(1 + 1.0 / ((ad - 1) * $2 % $1 + 1)) / ln($1 + 1) + random())::bigint AS c
                    FROM generate_series(1, $1) AS ad) x
                WHERE c > 0
                """, ads, inverse, day, AverageClicksPerSecond * 86_400);
            await QueryBenchmark.ExecuteAsync(dataSource, """
                INSERT INTO advertiser_clicks_hourly (advertiser_id, hour, clicks)
                SELECT s.advertiser_id, $1 + make_interval(hours => h), s.clicks / 24 + CASE WHEN h < s.clicks % 24 THEN 1 ELSE 0 END
                FROM (SELECT a.advertiser_id, sum(d.clicks) AS clicks FROM ad_clicks_daily d JOIN ads a ON a.ad_id = d.ad_id WHERE d.day = $1 GROUP BY 1) s,
                     generate_series(0, 23) AS h
                """, day);
            context.Say($"rollups of {day:yyyy-MM-dd} ({watch.Elapsed.TotalSeconds:0} s)");
        }

        seconds["older_rollups"] = Lap(watch);
        context.Say("vacuum analyze");
        await QueryBenchmark.ExecuteAsync(dataSource, "VACUUM ANALYZE");
        seconds["vacuum_analyze"] = Lap(watch);
        seconds["total"] = seconds.Values.Sum();
        await QueryBenchmark.ExecuteAsync(dataSource, "INSERT INTO bench_scale_seed (ads, hours, rollup_days, anchor, seconds) VALUES ($1, $2, $3, $4, $5::jsonb)",
            ads, hours, rollupDays, anchor, System.Text.Json.JsonSerializer.Serialize(seconds));
        return (anchor, seconds);
    }

    private static double Lap(Stopwatch watch)
    {
        var elapsed = watch.Elapsed.TotalSeconds;
        watch.Restart();
        return elapsed;
    }

    private static DateTimeOffset Min(DateTimeOffset a, DateTimeOffset b) => a < b ? a : b;

    /// <summary>x with a * x = 1 (mod m), for a and m coprime: maps an ad id back to its rank.</summary>
    private static long ModularInverse(long a, long m)
    {
        System.Numerics.BigInteger t = 0, newT = 1, r = m, newR = a;
        while (newR != 0)
        {
            var q = r / newR;
            (t, newT) = (newT, t - q * newT);
            (r, newR) = (newR, r - q * newR);
        }

        return (long)(t < 0 ? t + m : t);
    }

    /// <summary>Popularity ranks 1..n drawn log-uniformly (Zipf with exponent 1), as the seed draws them.</summary>
    private sealed class LogUniform(long n)
    {
        private readonly double _log = Math.Log(n + 1);

        public long Next(Random random) => Math.Min(n, (long)Math.Exp(random.NextDouble() * _log));
    }

    /// <summary>
    /// What the aggregator would emit for a 10,000 clicks/s stream over the seed's ads, written through the sink's
    /// writer with its default connections and batch size: every 10 s (the emit interval) the current minute's counts
    /// of the ads clicked in those 10 s as partials, and each minute's counts as finals once the minute is 30 s (the
    /// grace) behind. Freshness: from the emission's time to the commit of its last row.
    /// </summary>
    private sealed class LiveLoad(NpgsqlDataSource dataSource, TimeProvider clock, long ads)
    {
        private readonly LongHistogram _freshness = new(TimeStamp.Minutes(10), 3);
        private long _rows, _ticks;

        public async Task RunAsync(CancellationToken stop)
        {
            var options = new SinkOptions();
            var writer = new MinuteCountWriter(dataSource, options.EffectiveWriterConnections);
            var random = new Random(22);
            var zipf = new LogUniform(ads);
            var open = new SortedDictionary<DateTime, Dictionary<long, long>>();
            var now = clock.GetUtcNow().UtcDateTime;
            var next = new DateTime(now.Ticks - now.Ticks % EmitInterval.Ticks + EmitInterval.Ticks, DateTimeKind.Utc);
            while (!stop.IsCancellationRequested)
            {
                var wait = next - clock.GetUtcNow().UtcDateTime;
                if (wait > TimeSpan.Zero)
                {
                    try
                    {
                        await Task.Delay(wait, clock, stop);
                    }
                    catch (OperationCanceledException)
                    {
                        break;
                    }
                }

                var minute = TimeBuckets.MinuteOf(next - EmitInterval);
                if (!open.TryGetValue(minute, out var counts))
                {
                    open[minute] = counts = [];
                }

                var changed = new HashSet<long>();
                var clicks = LiveClicksPerSecond * (long)EmitInterval.TotalSeconds;
                for (var i = 0; i < clicks; i++)
                {
                    var ad = AdOfRank(zipf.Next(random), ads);
                    counts[ad] = counts.GetValueOrDefault(ad) + 1;
                    changed.Add(ad);
                }

                var rows = changed.Select(ad => Row(ad, minute, counts[ad], false, next)).ToList();
                foreach (var closed in open.Keys.Where(m => m.AddMinutes(1) + Grace <= next).ToList())
                {
                    rows.AddRange(open[closed].Select(c => Row(c.Key, closed, c.Value, true, next)));
                    open.Remove(closed);
                }

                for (var i = 0; i < rows.Count; i += options.MaxBatchRecords)
                {
                    await writer.WriteAsync(rows.GetRange(i, Math.Min(options.MaxBatchRecords, rows.Count - i)), CancellationToken.None);
                }

                _freshness.RecordValue((long)((clock.GetUtcNow().UtcDateTime - next).TotalSeconds * Stopwatch.Frequency));
                _rows += rows.Count;
                _ticks++;
                next += EmitInterval;
            }
        }

        private static MinuteCountRecord Row(long ad, DateTime minute, long clicks, bool final, DateTime emittedAt) =>
            new(new MinuteCount { AdId = ad, Salt = 0, WindowStart = minute, Clicks = clicks, Final = final, EmittedAt = emittedAt }, (int)(ad % 8));

        public Dictionary<string, object> Figures() => new()
        {
            ["emissions"] = _ticks,
            ["rows_per_emission"] = _ticks == 0 ? 0 : _rows / _ticks,
            ["rows_per_s"] = _ticks == 0 ? 0 : Math.Round(_rows / (_ticks * EmitInterval.TotalSeconds)),
            ["freshness_p50_s"] = Math.Round(_freshness.TotalCount == 0 ? 0 : _freshness.GetValueAtPercentile(50) / (double)Stopwatch.Frequency, 2),
            ["freshness_p99_s"] = Math.Round(_freshness.TotalCount == 0 ? 0 : _freshness.GetValueAtPercentile(99) / (double)Stopwatch.Frequency, 2),
            ["freshness_max_s"] = Math.Round(_freshness.TotalCount == 0 ? 0 : _freshness.GetMaxValue() / (double)Stopwatch.Frequency, 2),
        };
    }

    /// <summary>The sink's rollup refresh as its job runs it: one cycle every Sink:RollupRefreshInterval (30 s), timed.</summary>
    private sealed class RefreshCycles(NpgsqlDataSource dataSource, TimeProvider clock)
    {
        private readonly List<double> _seconds = [];
        private readonly TimeSpan _interval = new SinkOptions().RollupRefreshInterval;

        public async Task RunAsync(CancellationToken stop)
        {
            var job = new RollupRefreshJob(dataSource, Options.Create(new SinkOptions()), clock, NullLogger<RollupRefreshJob>.Instance);
            // The first cycle one interval in, when the live load has written: a cycle that ends after the pass still counts.
            var wait = _interval;
            while (true)
            {
                try
                {
                    await Task.Delay(wait > TimeSpan.Zero ? wait : TimeSpan.Zero, stop);
                }
                catch (OperationCanceledException)
                {
                    break;
                }

                var watch = Stopwatch.StartNew();
                await job.RunOnceAsync(CancellationToken.None);
                _seconds.Add(watch.Elapsed.TotalSeconds);
                wait = _interval - watch.Elapsed;
            }
        }

        public Dictionary<string, object> Figures() => new()
        {
            ["cycles"] = _seconds.Count,
            ["interval_s"] = _interval.TotalSeconds,
            ["seconds_per_cycle"] = _seconds.Select(s => Math.Round(s, 2)).ToList(),
            ["max_s"] = _seconds.Count == 0 ? 0 : Math.Round(_seconds.Max(), 2),
            ["keeps_up"] = _seconds.Count > 0 && _seconds.Max() < _interval.TotalSeconds,
        };
    }
}
