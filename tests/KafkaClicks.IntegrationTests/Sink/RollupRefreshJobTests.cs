using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
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
        Assert.Equal(4L, await db.ScalarAsync<long>("SELECT count(*) FROM rollup_dirty"));

        Assert.Equal(4, await job.RunOnceAsync(default));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM rollup_dirty"));
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

    [Fact]
    public async Task A_mark_renewed_while_its_hour_was_refreshed_survives_for_the_next_run()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        await writer.WriteAsync([Count(1, Start, 5, 0, Start.AddMinutes(2))], default);
        var version = await db.ScalarAsync<long>("SELECT version FROM rollup_dirty");

        // Hold the mark's row lock until the job tries to clear it, then let a newer write renew it first.
        await using var connection = await db.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await using (var renew = new Npgsql.NpgsqlCommand("UPDATE rollup_dirty SET version = nextval('rollup_dirty_version')", connection, transaction))
        {
            await renew.ExecuteNonQueryAsync();
        }

        var run = Job(db).RunOnceAsync(default);
        using (var waiting = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            while (await db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") == 0)
            {
                await Task.Delay(20, waiting.Token);
            }
        }

        await transaction.CommitAsync();
        await run.WaitAsync(TimeSpan.FromSeconds(10));

        Assert.True(await db.ScalarAsync<long>("SELECT version FROM rollup_dirty") > version);
        Assert.Equal(1, await Job(db).RunOnceAsync(default));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM rollup_dirty"));
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
        using (var waiting = new CancellationTokenSource(TimeSpan.FromSeconds(15)))
        {
            while (await db.ScalarAsync<long>("SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") == 0)
            {
                await Task.Delay(20, waiting.Token);
            }
        }

        var run = Job(db).RunOnceAsync(default);
        await Task.Delay(TimeSpan.FromSeconds(1.5));
        Assert.False(run.IsFaulted, run.Exception?.InnerException?.Message);
        await blocking.CommitAsync();

        await other.WaitAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(2, await run.WaitAsync(TimeSpan.FromSeconds(30)));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM rollup_dirty"));
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
        Assert.Equal(1L, await db.ScalarAsync<long>("SELECT count(*) FROM rollup_dirty WHERE hour = $1", old));

        Assert.Equal(0, await Job(db).RunOnceAsync(default));

        Assert.Equal(7L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 1"));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM rollup_dirty"));
    }
}
