using System.Globalization;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
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

    [Fact]
    public async Task Retention_drops_only_old_partitions_and_old_rollup_rows_and_creates_partitions_ahead()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        // The writer creates every day's partition from the oldest minute's to the newest's: days -40 .. -1.
        DateTime[] written = [Today.AddDays(-40), Today.AddDays(-31), Today.AddDays(-29), Today.AddDays(-1)];
        await writer.WriteAsync([.. written.Select((day, i) => Count(i + 1, day.AddHours(9)))], default);
        var dropped = Enumerable.Range(31, 10).Select(d => Today.AddDays(-d)).ToList();
        var kept = Enumerable.Range(1, 30).Select(d => Today.AddDays(-d)).ToList();
        await db.ExecuteAsync("INSERT INTO ad_clicks_hourly (ad_id, hour, clicks) VALUES (1, $1, 1), (2, $2, 2)",
            Today.AddDays(-401).AddHours(3), Today.AddDays(-398).AddHours(3));
        await db.ExecuteAsync("INSERT INTO ad_clicks_daily (ad_id, day, clicks) VALUES (1, $1, 1), (2, $2, 2)", Today.AddDays(-401), Today.AddDays(-398));
        await db.ExecuteAsync("INSERT INTO advertiser_clicks_hourly (advertiser_id, hour, clicks) VALUES (1, $1, 1), (2, $2, 2)",
            Today.AddDays(-401).AddHours(3), Today.AddDays(-398).AddHours(3));

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
}
