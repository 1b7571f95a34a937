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

    private const string HourlyMismatches = """
        SELECT count(*) FROM (
            SELECT ad_id, date_bin('1 hour', minute, timestamptz '2000-01-01 00:00:00+00') AS hour, sum(clicks)::bigint AS clicks
            FROM ad_clicks_minute GROUP BY 1, 2) m
        FULL JOIN ad_clicks_hourly r ON r.ad_id = m.ad_id AND r.hour = m.hour
        WHERE m.clicks IS DISTINCT FROM r.clicks
        """;

    private const string DailyMismatches = """
        SELECT count(*) FROM (
            SELECT ad_id, date_bin('1 day', minute, timestamptz '2000-01-01 00:00:00+00') AS day, sum(clicks)::bigint AS clicks
            FROM ad_clicks_minute GROUP BY 1, 2) m
        FULL JOIN ad_clicks_daily r ON r.ad_id = m.ad_id AND r.day = m.day
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

    [Fact]
    public async Task Hours_older_than_the_minute_retention_are_not_recomputed_into_empty_rollups()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var old = DateTime.UtcNow.Date.AddDays(-45);
        await db.ExecuteAsync("INSERT INTO ad_clicks_hourly (ad_id, hour, clicks) VALUES (1, $1, 7)", old);
        await db.ExecuteAsync("INSERT INTO rollup_dirty (hour) VALUES ($1)", old);

        Assert.Equal(0, await Job(db).RunOnceAsync(default));

        Assert.Equal(7L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 1"));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM rollup_dirty"));
    }
}
