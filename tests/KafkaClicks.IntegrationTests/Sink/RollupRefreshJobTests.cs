using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaClicks.IntegrationTests.Sink;

public class RollupRefreshJobTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    // Two hours either side of a UTC midnight, so both rollups span two buckets.
    private static readonly DateTime Start = DateTime.UtcNow.Date.AddHours(-2);

    private static readonly string HourlyMismatches = Mismatches("ad_clicks_hourly", "hour");

    private static readonly string DailyMismatches = Mismatches("ad_clicks_daily", "day");

    /// <summary>How many (ad, bucket) pairs the rollup <paramref name="table"/> has wrong or lacks, against the minutes.</summary>
    private static string Mismatches(string table, string bucket) => $"""
        SELECT count(*) FROM (
            SELECT ad_id, date_bin('1 {bucket}', minute, timestamptz '2000-01-01 00:00:00+00') AS {bucket}, sum(clicks)::bigint AS clicks
            FROM ad_clicks_minute GROUP BY 1, 2) m
        FULL JOIN {table} r ON r.ad_id = m.ad_id AND r.{bucket} = m.{bucket}
        WHERE m.clicks IS DISTINCT FROM r.clicks
        """;

    private static MinuteCountRecord Count(long adId, DateTime minute, long clicks, int salt, DateTime emittedAt, bool final = true) =>
        new(new MinuteCount { AdId = adId, Salt = salt, WindowStart = minute, Clicks = clicks, Final = final, EmittedAt = emittedAt }, (int)(adId % 4));

    /// <summary>How many hours have rollups marked dirty, whole (rollup_dirty) or for one of their ads (rollup_ad_changes).</summary>
    private static Task<long> DirtyHoursAsync(TestDatabase db) =>
        db.ScalarAsync<long>("SELECT count(*) FROM dirty_rollup_hours('-infinity', 'infinity')");

    private static RollupRefreshJob Job(TestDatabase db) =>
        new(db.DataSource, Options.Create(new SinkOptions()), TimeProvider.System, NullLogger<RollupRefreshJob>.Instance);

    [Fact]
    public async Task Rollups_equal_the_sum_of_minutes_after_the_job_runs_including_a_late_correction()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        var job = Job(db);
        var emitted = Start.AddHours(5);
        var batch = new List<MinuteCountRecord>();
        for (var ad = 1; ad <= 5; ad++)
        {
            for (var m = 0; m < 4 * 60; m += 7)
            {
                batch.Add(Count(ad, Start.AddMinutes(m), ad * 10 + m % 13, salt: m % 3, emitted));
            }
        }

        await writer.WriteAsync(batch, default);
        Assert.Equal(4L, await DirtyHoursAsync(db));

        // Plain PostgreSQL recomputes each ad's hour (5 ads in each of 4 hours), TimescaleDB the 4 whole hours.
        Assert.Equal(await db.FlavorAsync() == StorageFlavor.Plain ? 20 : 4, await job.RunOnceAsync(default));
        Assert.Equal(0L, await DirtyHoursAsync(db));
        Assert.Equal(20L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_hourly"));
        Assert.Equal(10L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_daily"));
        Assert.Equal(0L, await db.ScalarAsync<long>(HourlyMismatches));
        Assert.Equal(0L, await db.ScalarAsync<long>(DailyMismatches));
        var before = await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 3 AND hour = $1", Start.AddHours(1));

        // A late correction of an already refreshed minute (newer emission), and a stale emission that must not count.
        var corrected = batch.First(r => r.Count.AdId == 3 && r.Count.WindowStart >= Start.AddHours(1)).Count;
        await writer.WriteAsync([Count(3, corrected.WindowStart, corrected.Clicks + 100, corrected.Salt, emitted.AddMinutes(30))], default);
        await writer.WriteAsync([Count(3, corrected.WindowStart, 999_999, corrected.Salt, emitted.AddMinutes(-30))], default);
        Assert.NotEqual(0L, await db.ScalarAsync<long>(HourlyMismatches));

        Assert.Equal(1, await job.RunOnceAsync(default));
        Assert.Equal(0L, await db.ScalarAsync<long>(HourlyMismatches));
        Assert.Equal(0L, await db.ScalarAsync<long>(DailyMismatches));
        Assert.Equal(before + 100, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 3 AND hour = $1", Start.AddHours(1)));
        Assert.Equal(0, await job.RunOnceAsync(default));
    }

    /// <summary>How many (advertiser, hour) pairs advertiser_clicks_hourly has wrong or lacks, against the minutes.</summary>
    private const string AdvertiserMismatches = """
        SELECT count(*) FROM (
            SELECT a.advertiser_id, date_bin('1 hour', m.minute, timestamptz '2000-01-01 00:00:00+00') AS hour, sum(m.clicks)::bigint AS clicks
            FROM ad_clicks_minute m JOIN ads a ON a.ad_id = m.ad_id GROUP BY 1, 2) x
        FULL JOIN advertiser_clicks_hourly r ON r.advertiser_id = x.advertiser_id AND r.hour = x.hour
        WHERE x.clicks IS DISTINCT FROM r.clicks
        """;

    [Fact]
    public async Task Every_rollup_equals_its_minutes_after_each_run_through_growing_counts_corrections_and_whole_hour_marks()
    {
        // 24 ads of 3 advertisers over 3 hours across a UTC midnight, written in 8 rounds as the sink writes partial
        // counts: each round raises some counts, the fifth lowers some (a correction), and the third also marks an hour
        // whole, as a writer that marks hours rather than ads does. After every run each hour, day and advertiser hour
        // must be the sum of its minutes, whichever way it was refreshed.
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        await db.ExecuteAsync("INSERT INTO advertisers (advertiser_id, name) SELECT g, 'a' || g FROM generate_series(1, 3) g");
        await db.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) SELECT g, g % 3 + 1, 'https://example.com/' || g FROM generate_series(1, 24) g");
        var writer = new MinuteCountWriter(db.DataSource);
        var job = Job(db);
        var random = new Random(2207);
        var counts = new Dictionary<(long Ad, DateTime Minute), long>();
        for (var round = 1; round <= 8; round++)
        {
            var batch = new List<MinuteCountRecord>();
            var written = new HashSet<(long, DateTime)>();
            for (var i = 0; i < 60; i++)
            {
                var key = ((long)random.Next(1, 25), Start.AddMinutes(random.Next(0, 3 * 60)));
                if (!written.Add(key))
                {
                    continue;
                }

                var clicks = round == 5 && counts.TryGetValue(key, out var had) ? had / 2 : counts.GetValueOrDefault(key) + random.Next(1, 20);
                counts[key] = clicks;
                batch.Add(Count(key.Item1, key.Item2, clicks, 0, Start.AddHours(4).AddSeconds(round), final: false));
            }

            await writer.WriteAsync(batch, default);
            if (round == 3)
            {
                await db.ExecuteAsync("INSERT INTO rollup_dirty (hour) VALUES ($1) ON CONFLICT (hour) DO UPDATE SET version = nextval('rollup_dirty_version')", Start.AddHours(1));
            }

            Assert.NotEqual(0, await job.RunOnceAsync(default));
            Assert.Equal(0L, await DirtyHoursAsync(db));
            Assert.Equal(0L, await db.ScalarAsync<long>(HourlyMismatches));
            Assert.Equal(0L, await db.ScalarAsync<long>(DailyMismatches));
            Assert.Equal(0L, await db.ScalarAsync<long>(AdvertiserMismatches));
        }

        Assert.Equal(counts.Values.Sum(), await db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_daily"));
    }

    [Fact]
    public async Task Writers_and_the_refresh_running_at_once_neither_fail_nor_leave_the_rollups_behind_their_minutes()
    {
        // Two writers (two sink processes: a hot ad's salts are counted on different partitions, so each writes its own
        // salt of the same ads) renew marks of the same hours and ads in their batches while the job refreshes and
        // removes marks: no statement may fail (a deadlock between a writer renewing marks and the job removing others
        // is one way), and once the writers stop, one more run must leave every rollup equal to its minutes.
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var job = Job(db);
        using var stop = new CancellationTokenSource(TimeSpan.FromSeconds(6));
        var emitted = 0L;
        async Task WriteAsync(int salt)
        {
            var writer = new MinuteCountWriter(db.DataSource);
            var random = new Random(salt);
            while (!stop.IsCancellationRequested)
            {
                var at = Start.AddHours(4).AddTicks(Interlocked.Increment(ref emitted));
                var batch = Enumerable.Range(0, 2_000)
                    .Select(_ => Count(random.Next(1, 400), Start.AddMinutes(random.Next(0, 3 * 60)), random.Next(1, 1_000), salt, at, final: false))
                    .ToList();
                await writer.WriteAsync(batch, default);
            }
        }

        async Task RefreshAsync()
        {
            while (!stop.IsCancellationRequested)
            {
                await job.RunOnceAsync(default);
            }
        }

        await Task.WhenAll(Task.Run(() => WriteAsync(0)), Task.Run(() => WriteAsync(1)), Task.Run(RefreshAsync));

        await job.RunOnceAsync(default);
        Assert.Equal(0L, await DirtyHoursAsync(db));
        Assert.Equal(0L, await db.ScalarAsync<long>(HourlyMismatches));
        Assert.Equal(0L, await db.ScalarAsync<long>(DailyMismatches));
    }

    [Fact]
    public async Task A_refresh_recomputes_the_marked_ads_of_an_hour_on_plain_postgresql_and_the_whole_hour_on_timescaledb()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        await writer.WriteAsync([Count(1, Start.AddMinutes(5), 4, 0, Start.AddHours(4)), Count(2, Start.AddMinutes(6), 6, 0, Start.AddHours(4))], default);
        await Job(db).RunOnceAsync(default);

        // Ad 2's stored hour is made wrong; then only ad 1 changes. Plain PostgreSQL recomputes ad 1's hour and nothing
        // else (the cost of a refresh is what changed), TimescaleDB the whole hour, ad 2's row with it.
        await db.RewriteRollupAsync("ad_clicks_hourly", "clicks", 1000, "ad_id = $1", 2L);
        await writer.WriteAsync([Count(1, Start.AddMinutes(5), 9, 0, Start.AddHours(5))], default);
        await Job(db).RunOnceAsync(default);

        Assert.Equal(9L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 1"));
        var plain = await db.FlavorAsync() == StorageFlavor.Plain;
        Assert.Equal(plain ? 1000L : 6L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 2"));
    }

    /// <summary>
    /// A newer count of an ad's hour is committed while the job refreshes that hour: the job has read the minutes
    /// before it, so the hour must stay marked (plain PostgreSQL: the new change is a row the job did not take;
    /// TimescaleDB: the hour's mark was renewed, or made again after the job removed it) and the next run must include it.
    /// </summary>
    [Fact]
    public async Task A_change_committed_while_its_hour_is_refreshed_stays_marked_for_the_next_run()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        await writer.WriteAsync([Count(1, Start, 5, 0, Start.AddMinutes(2), final: false)], default);
        Assert.Equal(1, await Job(db).RunOnceAsync(default));
        await writer.WriteAsync([Count(1, Start, 7, 0, Start.AddMinutes(3), final: false)], default);

        // Hold the job where it has read the change and not yet cleared it: plain PostgreSQL at its write of the ad's
        // hourly row, TimescaleDB at its removal of the hour's mark (the aggregate already refreshed).
        var plain = await db.FlavorAsync() == StorageFlavor.Plain;
        await using var connection = await db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var hold = new Npgsql.NpgsqlCommand(
            plain ? "SELECT 1 FROM ad_clicks_hourly WHERE ad_id = 1 FOR UPDATE" : "SELECT 1 FROM rollup_dirty FOR UPDATE",
            connection, transaction))
        {
            Assert.Equal(1, await hold.ExecuteScalarAsync());
        }

        var run = Job(db).RunOnceAsync(default);
        await ClickRows.WaitForQueryBlockedOnLockAsync(db);

        // On plain PostgreSQL the newer write commits while the job waits; on TimescaleDB its mark waits on the same
        // lock as the job's removal.
        var newer = writer.WriteAsync([Count(1, Start, 9, 0, Start.AddMinutes(4))], default);
        if (plain)
        {
            await newer.WaitAsync(TimeSpan.FromSeconds(10));
        }
        else
        {
            await ClickRows.WaitForQueryBlockedOnLockAsync(db, 2);
        }

        await transaction.CommitAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));
        await newer.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.Equal(1L, await DirtyHoursAsync(db));
        Assert.Equal(1, await Job(db).RunOnceAsync(default));
        Assert.Equal(0L, await DirtyHoursAsync(db));
        Assert.Equal(9L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 1"));
    }

    /// <summary>
    /// More changes than one refresh transaction takes (four writes of 9,000 ads against 20,000 ads a call): the job
    /// goes on until it has refreshed every change written before it started.
    /// </summary>
    [Fact]
    public async Task A_run_refreshes_every_change_even_when_they_take_several_transactions()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        for (var write = 0; write < 4; write++)
        {
            await writer.WriteAsync(
                [.. Enumerable.Range(write * 9_000 + 1, 9_000).Select(ad => Count(ad, Start.AddMinutes(ad % 60), ad % 7 + 1, 0, Start.AddHours(3)))],
                default);
        }

        var plain = await db.FlavorAsync() == StorageFlavor.Plain;
        Assert.Equal(plain ? 36_000 : 1, await Job(db).RunOnceAsync(default));
        Assert.Equal(0L, await DirtyHoursAsync(db));
        Assert.Equal(36_000L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_hourly"));
        Assert.Equal(0L, await db.ScalarAsync<long>(HourlyMismatches));
        Assert.Equal(0L, await db.ScalarAsync<long>(DailyMismatches));
    }

    /// <summary>
    /// Another refresh of the same hours is under way (TimescaleDB's refresh policy, or the job of a second sink
    /// process), held up here by a lock on the minutes. TimescaleDB refuses the second refresh at once ("due to a
    /// concurrent refresh"), plain PostgreSQL makes it wait on the refresh lock; either way the job must finish its
    /// hours, not fail and leave them to the next run.
    /// </summary>
    [Fact]
    public async Task A_refresh_that_meets_a_concurrent_refresh_of_its_hours_waits_for_it_instead_of_failing()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var hour = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour - 2);
        await db.ExecuteAsync("INSERT INTO advertisers (advertiser_id, name) VALUES (1, 'a')");
        await db.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES (1, 1, 'https://example.com/1'), (2, 1, 'https://example.com/2')");
        await new MinuteCountWriter(db.DataSource).WriteAsync(
            [Count(1, hour.AddMinutes(5), 4, 0, hour.AddMinutes(6)), Count(2, hour.AddMinutes(65), 6, 0, hour.AddMinutes(66))], default);

        await using var blocker = await db.DataSource.OpenConnectionAsync();
        await using var blocking = await blocker.BeginTransactionAsync();
        await ClickRows.LockMinutesAsync(blocker, blocking);

        var other = db.RefreshRollupsAsync(hour, hour.AddHours(2));
        await ClickRows.WaitForQueryBlockedOnLockAsync(db);

        var run = Job(db).RunOnceAsync(default);
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.False(run.IsFaulted, run.Exception?.InnerException?.Message);
        await blocking.CommitAsync();

        await other.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(0L, await DirtyHoursAsync(db));
        Assert.Equal(0L, await db.ScalarAsync<long>(HourlyMismatches));
        Assert.Equal(0L, await db.ScalarAsync<long>(DailyMismatches));
        Assert.Equal(10L, await db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM advertiser_clicks_hourly"));
    }

    [Fact]
    public async Task Hours_older_than_the_minute_retention_are_not_recomputed_into_empty_rollups()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var old = DateTime.UtcNow.Date.AddDays(-45);

        // An hour refreshed while its minutes were kept (7 clicks), whose minutes retention then dropped; its mark is
        // still there (the refresh job would have skipped the hour anyway: it is past retention).
        await new MinuteCountWriter(db.DataSource).WriteAsync([Count(1, old.AddMinutes(5), 7, 0, old.AddMinutes(6))], default);
        await db.RefreshRollupsAsync(old, old.AddHours(1));
        await db.RunRetentionAsync(new SinkOptions());
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));

        // On plain PostgreSQL the drop applies and removes the marks of the days it drops (019); TimescaleDB's chunks
        // are dropped by its own policy, and the whole-hour mark stays.
        var plain = await db.FlavorAsync() == StorageFlavor.Plain;
        Assert.Equal(plain ? 0L : 1L, await db.ScalarAsync<long>("SELECT count(*) FROM dirty_rollup_hours($1, $1 + interval '1 hour')", old));

        Assert.Equal(0, await Job(db).RunOnceAsync(default));

        Assert.Equal(7L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 1"));
        Assert.Equal(0L, await DirtyHoursAsync(db));
    }

    /// <summary>
    /// A refresh that runs long (a backlog) or on a sink whose clock is behind takes the minute retention's edge from its
    /// own clock, so it may still take the marks of a day that retention, on time, has dropped meanwhile. Recomputed from
    /// no minutes, the hour's clicks would leave its rollups, which outlive the minutes by a year. The drop brings the
    /// day's marked rollups up to date first, and leaves no mark of the dropped minutes.
    /// </summary>
    [Fact]
    [Trait("Category", "Billing")]
    public async Task A_day_of_minutes_dropped_while_its_changes_wait_keeps_every_click_in_its_rollups()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        if (await db.FlavorAsync() == StorageFlavor.Timescale)
        {
            // On TimescaleDB chunks are dropped by its own retention policy, not by drop_ad_clicks_minute_partitions,
            // and writers mark whole hours: a late job's refresh of a marked hour whose chunk is gone is not covered by
            // 019 (README, "What you can rely on", says so).
            return;
        }

        var writer = new MinuteCountWriter(db.DataSource);
        var hour = DateTime.UtcNow.Date.AddDays(-40).AddHours(10);

        // A job whose clock is 15 days behind: the day is within its minute retention (30 days).
        var late = new RollupRefreshJob(db.DataSource, Options.Create(new SinkOptions()), new ShiftedTime(TimeSpan.FromDays(-15)),
            NullLogger<RollupRefreshJob>.Instance);
        await writer.WriteAsync([Count(1, hour.AddMinutes(1), 5, 0, hour.AddMinutes(2))], default);
        Assert.Equal(1, await late.RunOnceAsync(default));
        Assert.Equal(5L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 1 AND hour = $1", hour));

        // A change the job has not taken yet (a reconciler's correction), then retention on time drops the day.
        await writer.WriteAsync([Count(1, hour.AddMinutes(3), 2, 0, hour.AddMinutes(4))], default);
        await db.RunRetentionAsync(new SinkOptions());
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));

        await late.RunOnceAsync(default);

        Assert.Equal(7L, await db.ScalarAsync<long>("SELECT coalesce((SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 1 AND hour = $1), 0)", hour));
        Assert.Equal(7L, await db.ScalarAsync<long>("SELECT coalesce((SELECT clicks FROM ad_clicks_daily WHERE ad_id = 1 AND day = $1), 0)", hour.Date));
        Assert.Equal(0L, await DirtyHoursAsync(db));
    }
}
