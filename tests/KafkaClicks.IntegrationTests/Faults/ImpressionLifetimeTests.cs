using System.Net;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using Microsoft.Extensions.DependencyInjection;
using ConnectionMultiplexer = StackExchange.Redis.ConnectionMultiplexer;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// One impression lifetime (Impressions:Lifetime) drives token expiry, the Redis claim, the aggregator's memory of
/// impressions and reconciliation's look-back, so a repeat that Redis did not stop is still counted once, however long
/// within the lifetime after the first click it comes.
/// </summary>
public class ImpressionLifetimeTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const long AdId = 61;

    [Fact]
    [Trait("Category", "Billing")]
    public async Task A_repeat_half_an_hour_after_the_first_click_with_Redis_flushed_between_is_counted_once_by_the_stream_and_by_reconciliation()
    {
        await using var redis = await PrivateRedis.StartAsync();
        var time = new ShiftedTime();
        await using var host = await ProductHost.StartAsync(postgres, Role.All,
            new Dictionary<string, string?> { ["ConnectionStrings:Redis"] = redis.ConnectionString },
            builder => builder.Services.AddSingleton<TimeProvider>(time));
        await host.AddAdvertiserAsync(1, AdId);

        // Every role's clock (ingest's stamps the clicks) runs 31 minutes behind: the impression is issued and clicked then.
        time.Offset = TimeSpan.FromMinutes(-31);
        var token = await host.MintAsync(AdId);
        await ClickAsync(host, token);

        // Redis loses the claim (a restart without persistence, a failover); 30 minutes later the impression is clicked
        // again, then a fresh impression of the same ad: on the same partition, it is counted after the repeat was seen.
        time.Offset = TimeSpan.FromMinutes(-1);
        using (var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true"))
        {
            await connection.GetServers().Single().FlushAllDatabasesAsync();
        }

        await ClickAsync(host, token);
        await ClickAsync(host, await host.MintAsync(AdId));

        // Ingest accepted the repeat (Redis had forgotten the impression): two records of it in the raw log. Each click's
        // minute is the one ingest stamped on it (a minute read from the clock after the request may be the next one).
        var raw = await RawClicksAsync(host, 3);
        Assert.Equal(3, raw.Count);
        var repeated = raw.GroupBy(c => c.ImpressionId).Single(g => g.Count() == 2).OrderBy(c => c.ClickedAt).ToList();
        var first = ClickRows.Minute(new DateTimeOffset(repeated[0].ClickedAt, TimeSpan.Zero));
        var repeat = ClickRows.Minute(new DateTimeOffset(repeated[1].ClickedAt, TimeSpan.Zero));
        var fresh = ClickRows.Minute(new DateTimeOffset(raw.Single(c => c.ImpressionId != repeated[0].ImpressionId).ClickedAt, TimeSpan.Zero));
        Assert.True(repeat > first.AddMinutes(25), $"the repeat came {repeat - first} after the first click");

        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (await host.Database.ScalarAsync<long>(
                   "SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = $1 AND minute = $2 AND final", AdId, fresh) == 0
               && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
        }

        // The stream counted the impression once, in the minute of its first click, and the fresh impression once.
        Assert.Equal(1, await MinuteClicksAsync(host, first));
        Assert.Equal(1, await MinuteClicksAsync(host, fresh));
        Assert.Equal(2, await host.Database.ScalarAsync<long>(
            "SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = $1", AdId));

        // Reconciliation agrees, over a range holding only the repeat and over one holding both clicks.
        var reconciler = host.App.Services.GetRequiredService<ClickReconciler>();
        var now = time.GetUtcNow().UtcDateTime;
        foreach (var from in new[] { repeat.UtcDateTime, first.UtcDateTime.AddMinutes(-5) })
        {
            var report = await reconciler.RunAsync(new ReconcileRequest(from, now.AddMinutes(2), AdId, DryRun: true), null, default);
            Assert.Empty(report.LargestDifferences);
            Assert.Equal(from == repeat.UtcDateTime ? 1 : 2, report.RawClicks);
        }
    }

    private static async Task ClickAsync(ProductHost host, string token)
    {
        using var response = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
    }

    /// <summary>This ad's clicks in clicks.raw, once at least <paramref name="count"/> are there or 30 s have passed.</summary>
    private static async Task<List<ClickEvent>> RawClicksAsync(ProductHost host, int count)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            var clicks = TopicReader.ReadClicks(host.Broker).Select(r => r.Message.Value).Where(c => c.AdId == AdId).ToList();
            if (clicks.Count >= count || DateTime.UtcNow >= deadline)
            {
                return clicks;
            }

            await Task.Delay(250);
        }
    }

    private static Task<long> MinuteClicksAsync(ProductHost host, DateTimeOffset minute) =>
        host.Database.ScalarAsync<long>("SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = $1 AND minute = $2", AdId, minute);
}
