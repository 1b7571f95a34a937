using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using KafkaClicks.Reconciler;
using KafkaClicks.Sink;
using static KafkaClicks.IntegrationTests.Infrastructure.ClickRows;

namespace KafkaClicks.IntegrationTests.Storage;

/// <summary>
/// Minutes of a day that is days old: on TimescaleDB its chunk is compressed (the compression policy does it after two
/// days), on plain PostgreSQL it is an ordinary day partition. Late counts and reconciler corrections still land there,
/// and the minutes, the rollups and the query API show them.
/// </summary>
public class OldMinuteTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly DateTime Hour = DateTime.UtcNow.Date.AddDays(-5).AddHours(10);

    private static MinuteCountRecord Count(int minute, long clicks, TimeSpan emittedAfter) =>
        new(new MinuteCount { AdId = 101, Salt = 0, WindowStart = Hour.AddMinutes(minute), Clicks = clicks, Final = true, EmittedAt = Hour.AddMinutes(minute + 1) + emittedAfter }, 0);

    [Fact]
    public async Task Late_counts_and_corrections_written_into_an_old_compressed_day_show_in_rollups_and_answers()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var db = host.Database;
        await db.PauseBackgroundPoliciesAsync();
        await host.AddAdvertiserAsync(1, 101);
        var writer = new MinuteCountWriter(db.DataSource);
        await writer.WriteAsync([Count(5, 3, TimeSpan.Zero), Count(6, 4, TimeSpan.Zero)], default);
        Assert.Equal(1, await RefreshRollupsAsync(db));
        var flavor = await db.FlavorAsync();
        if (flavor == StorageFlavor.Timescale)
        {
            Assert.Equal(1L, await db.ScalarAsync<long>(
                "SELECT count(compress_chunk(c)) FROM show_chunks('ad_clicks_minute', older_than => $1) c", Hour.Date.AddDays(1)));
            Assert.True(await CompressedAsync(db), "the old day's chunk should be compressed");
        }
        else
        {
            Assert.Equal($"ad_clicks_minute_p{Hour:yyyyMMdd}", await db.ScalarAsync<string>("SELECT tableoid::regclass::text FROM ad_clicks_minute LIMIT 1"));
        }

        // The sink: a newer emission of a stored minute and a minute not stored yet.
        await writer.WriteAsync([Count(5, 8, TimeSpan.FromMinutes(30)), Count(7, 2, TimeSpan.FromMinutes(30))], default);

        // The reconciler: the raw log holds 6 distinct clicks in minute 6, where 4 are stored. (The sink's finals above
        // mark the stream final through minute 8, so that is as far as a run may correct.)
        await using var broker = await RawClicks.BrokerAsync();
        var clicks = new[] { (5, 8), (6, 6), (7, 2) }
            .SelectMany(m => Enumerable.Range(0, m.Item2).Select(i => RawClicks.Click(101, Hour.AddMinutes(m.Item1).AddSeconds(i * 5))))
            .ToList();
        RawClicks.Produce(broker, 4, clicks);
        var report = await new ClickReconciler(db.DataSource, RawClicks.Counter(broker, TimeSpan.FromMinutes(5)))
            .RunAsync(new ReconcileRequest(Hour, Hour.AddMinutes(8), null, DryRun: false), null, default);
        Assert.Equal("succeeded", report.Status);
        Assert.Equal(1, report.WindowsCorrected);

        if (flavor == StorageFlavor.Timescale)
        {
            Assert.True(await CompressedAsync(db), "the writes should land in the compressed chunk, not in a new one");
            Assert.Equal(1L, await db.ScalarAsync<long>("SELECT count(*) FROM show_chunks('ad_clicks_minute', older_than => $1)", Hour.Date.AddDays(1)));
        }

        Assert.Equal(16L, await db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_minute"));
        await RefreshRollupsAsync(db);
        Assert.Equal(16L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_hourly WHERE ad_id = 101 AND hour = $1", Hour));
        Assert.Equal(16L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_daily WHERE ad_id = 101 AND day = $1", Hour.Date));
        Assert.Equal(16L, await db.ScalarAsync<long>("SELECT clicks FROM advertiser_clicks_hourly WHERE advertiser_id = 1 AND hour = $1", Hour));

        await CompleteThroughAsync(db, Minute(DateTimeOffset.UtcNow));
        var from = new DateTimeOffset(Hour, TimeSpan.Zero);
        var minutes = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(from)}&to={Iso(from.AddMinutes(10))}&granularity=1m", ProductHost.AdminKey);
        Assert.Equal(Expected(10, (5, 8), (6, 6), (7, 2)), Clicks(minutes));
        var hours = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(from)}&to={Iso(from.AddHours(2))}&granularity=1h", ProductHost.AdminKey);
        Assert.Equal([16L, 0L], Clicks(hours));
        var days = await GetJsonAsync(host, $"/v1/advertisers/1/clicks?from={Iso(Day(from))}&to={Iso(Day(from).AddDays(1))}&granularity=1d", ProductHost.AdminKey);
        Assert.Equal([16L], Clicks(days));
    }

    private static Task<bool> CompressedAsync(TestDatabase db) =>
        db.ScalarAsync<bool>("SELECT bool_and(is_compressed) FROM timescaledb_information.chunks WHERE hypertable_name = 'ad_clicks_minute' AND range_end <= $1", Hour.Date.AddDays(1));
}
