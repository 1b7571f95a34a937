using System.Globalization;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaClicks.IntegrationTests.Sink;

public class RetentionJobTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly DateTime Today = DateTime.UtcNow.Date;

    private static string Partition(DateTime day) => "ad_clicks_minute_p" + day.ToString("yyyyMMdd", CultureInfo.InvariantCulture);

    private static MinuteCountRecord Count(long adId, DateTime minute) =>
        new(new MinuteCount { AdId = adId, Salt = 0, WindowStart = minute, Clicks = 3, Final = true, EmittedAt = minute.AddMinutes(1) }, 0);

    private static async Task<bool> ExistsAsync(TestDatabase db, string table) =>
        await db.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", table);

    /// <summary>
    /// Rollup rows of ad 1 (advertiser 1) 401 days back, of ad 2 (advertiser 2) 398 days back, written the product's
    /// way: minutes through the writer, then the rollup refresh (the refresh job itself skips hours past the minute
    /// retention). Returns the hours.
    /// </summary>
    private static async Task<(DateTime Old, DateTime Kept)> OldRollupsAsync(TestDatabase db, MinuteCountWriter writer)
    {
        await db.ExecuteAsync("INSERT INTO advertisers (advertiser_id, name) VALUES (1, 'one'), (2, 'two')");
        await db.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES (1, 1, 'https://example.com/1'), (2, 2, 'https://example.com/2')");
        var (old, kept) = (Today.AddDays(-401).AddHours(3), Today.AddDays(-398).AddHours(3));
        await writer.WriteAsync([Count(1, old), Count(2, kept)], default);
        await db.RefreshRollupsAsync(old, old.AddHours(1));
        await db.RefreshRollupsAsync(kept, kept.AddHours(1));
        foreach (var rollup in new[] { "ad_clicks_hourly", "ad_clicks_daily", "advertiser_clicks_hourly" })
        {
            Assert.Equal(2L, await db.ScalarAsync<long>($"SELECT count(*) FROM {rollup}"));
        }

        return (old, kept);
    }

    [Fact]
    public async Task Retention_drops_only_old_partitions_and_old_rollup_rows_and_creates_partitions_ahead()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        await OldRollupsAsync(db, writer);
        if (await db.FlavorAsync() == StorageFlavor.Timescale)
        {
            await TimescalePoliciesDoTheSameAsync(db, writer);
            return;
        }

        // The writer creates every day's partition from the oldest minute's to the newest's: days -40 .. -1 (and -401 .. -398 above).
        DateTime[] written = [Today.AddDays(-40), Today.AddDays(-31), Today.AddDays(-29), Today.AddDays(-1)];
        await writer.WriteAsync([.. written.Select((day, i) => Count(i + 1, day.AddHours(9)))], default);
        var dropped = Enumerable.Range(31, 10).Concat(Enumerable.Range(398, 4)).Select(d => Today.AddDays(-d)).ToList();
        var kept = Enumerable.Range(1, 30).Select(d => Today.AddDays(-d)).ToList();

        var job = new RetentionJob(db.DataSource, Options.Create(new SinkOptions()), TimeProvider.System, NullLogger<RetentionJob>.Instance);
        var result = await job.RunOnceAsync(default);

        Assert.NotNull(result);
        Assert.Equal(dropped.Count, result.PartitionsDropped);
        Assert.Equal(3L, result.RollupRowsDeleted);
        foreach (var day in dropped)
        {
            Assert.False(await ExistsAsync(db, Partition(day)), $"{Partition(day)} should be dropped");
        }

        foreach (var day in kept)
        {
            Assert.True(await ExistsAsync(db, Partition(day)), $"{Partition(day)} should be kept");
        }

        for (var d = 0; d <= 7; d++)
        {
            Assert.True(await ExistsAsync(db, Partition(Today.AddDays(d))), $"{Partition(Today.AddDays(d))} should be created ahead");
        }

        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT ad_id FROM ad_clicks_hourly"));
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT ad_id FROM ad_clicks_daily"));
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT advertiser_id FROM advertiser_clicks_hourly"));

        var again = await job.RunOnceAsync(default);
        Assert.Equal(new RetentionResult(0, 0, 0), again);
    }

    /// <summary>
    /// TimescaleDB's equivalent: chunks are made on insert, and the retention policies (set from the options by the
    /// job) drop whole chunks that end before the retention: the minutes of days -40 .. -31 and the rollup chunk of
    /// 401 days back when it ends more than 400 days back (rollup chunks span 10 days), never a newer one.
    /// </summary>
    private static async Task TimescalePoliciesDoTheSameAsync(TestDatabase db, MinuteCountWriter writer)
    {
        DateTime[] written = [Today.AddDays(-40), Today.AddDays(-31), Today.AddDays(-29), Today.AddDays(-1)];
        await writer.WriteAsync([.. written.Select((day, i) => Count(i + 1, day.AddHours(9)))], default);
        Assert.Equal(6L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
        var old = Today.AddDays(-401).AddHours(3);
        var expected = new Dictionary<string, string>();
        foreach (var (rollup, column, time) in new[] { ("ad_clicks_hourly", "ad_id", "hour"), ("advertiser_clicks_hourly", "advertiser_id", "hour"), ("ad_clicks_daily", "ad_id", "day") })
        {
            // The stored row 401 days back goes exactly when the whole rollup chunk holding it ends before the retention.
            var chunkEnd = await db.ScalarAsync<DateTime>("""
                SELECT c.range_end FROM timescaledb_information.chunks c
                JOIN timescaledb_information.continuous_aggregates a
                  ON a.materialization_hypertable_schema = c.hypertable_schema AND a.materialization_hypertable_name = c.hypertable_name
                WHERE a.view_name = $1 AND c.range_start <= $2 AND c.range_end > $2
                """, rollup, rollup == "ad_clicks_daily" ? old.Date : old);
            // (Only the old rows: the minutes written above show in the rollups too, aggregated in real time.)
            expected[$"SELECT {column} FROM {rollup} WHERE {time} < now() - interval '300 days'"] = chunkEnd <= DateTime.UtcNow.AddDays(-400) ? "2" : "1 2";
        }

        await db.RunRetentionAsync(new SinkOptions());

        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
        Assert.Equal("3 4", await AdsAsync(db, "SELECT ad_id FROM ad_clicks_minute"));
        foreach (var (sql, ids) in expected)
        {
            Assert.Equal(ids, await AdsAsync(db, sql));
        }

        // Run again: nothing left to drop, and the policies were not duplicated.
        await db.RunRetentionAsync(new SinkOptions());
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
        Assert.Equal(4, (await db.PolicyJobsAsync("policy_retention")).Count);
    }

    /// <summary>The ids the query returns, in order, separated by spaces.</summary>
    private static async Task<string> AdsAsync(TestDatabase db, string sql)
    {
        var ids = new List<long>();
        await using var command = db.DataSource.CreateCommand(sql + " ORDER BY 1");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt64(0));
        }

        return string.Join(' ', ids);
    }

    /// <summary>
    /// Retention follows Sink:MinuteRetention and Sink:RollupRetention, not constants: shorter options drop more, and
    /// changing them takes effect the next time the job runs (at the sink's start). On TimescaleDB the job rewrites the
    /// policies in place (same jobs, new drop_after) and shortens the hourly refresh policies' look-back to the minute
    /// retention, so they never recompute hours whose minutes are gone.
    /// </summary>
    [Fact]
    public async Task Retention_follows_the_options()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        var oldHour = Today.AddDays(-250).AddHours(1);
        await writer.WriteAsync([Count(5, oldHour)], default);
        await db.RefreshRollupsAsync(oldHour, oldHour.AddHours(1));
        await writer.WriteAsync([Count(1, Today.AddDays(-9).AddHours(1)), Count(2, Today.AddDays(-4).AddHours(1)), Count(3, Today.AddHours(-12))], default);
        const string OldRollups = "SELECT ad_id FROM ad_clicks_hourly WHERE hour < now() - interval '100 days' UNION ALL SELECT ad_id FROM ad_clicks_daily WHERE day < now() - interval '100 days'";

        await db.RunRetentionAsync(new SinkOptions());
        Assert.Equal("1 2 3", await AdsAsync(db, "SELECT ad_id FROM ad_clicks_minute"));
        Assert.Equal("5 5", await AdsAsync(db, OldRollups));

        var shorter = new SinkOptions { MinuteRetention = TimeSpan.FromDays(5), RollupRetention = TimeSpan.FromDays(200) };
        await db.RunRetentionAsync(shorter);
        Assert.Equal("2 3", await AdsAsync(db, "SELECT ad_id FROM ad_clicks_minute"));
        Assert.Equal("", await AdsAsync(db, OldRollups));

        var shortest = new SinkOptions { MinuteRetention = TimeSpan.FromDays(2), RollupRetention = TimeSpan.FromDays(200) };
        await db.RunRetentionAsync(shortest);
        await db.RunRetentionAsync(shortest);
        Assert.Equal("3", await AdsAsync(db, "SELECT ad_id FROM ad_clicks_minute"));

        if (await db.FlavorAsync() == StorageFlavor.Timescale)
        {
            var policies = await db.ScalarAsync<string>("""
                SELECT string_agg(hypertable_name || ' ' || proc_name || ' ' ||
                                  coalesce((config ->> 'drop_after')::interval, (config ->> 'start_offset')::interval)::text, '; '
                                  ORDER BY hypertable_name, proc_name)
                FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL AND proc_name <> 'policy_compression'
                """);
            Assert.Equal(
                "ad_clicks_daily policy_refresh_continuous_aggregate 7 days; ad_clicks_daily policy_retention 200 days; " +
                "ad_clicks_hourly policy_refresh_continuous_aggregate 2 days; ad_clicks_hourly policy_retention 200 days; " +
                "ad_clicks_minute policy_retention 2 days; " +
                "advertiser_clicks_hourly policy_refresh_continuous_aggregate 2 days; advertiser_clicks_hourly policy_retention 200 days",
                policies);
        }
    }
}
