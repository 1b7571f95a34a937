using System.Net;
using KafkaClicks.Cli.Hosting;
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
        var first = ClickRows.Minute(time.GetUtcNow());

        // Redis loses the claim (a restart without persistence, a failover); 30 minutes later the impression is clicked
        // again, then a fresh impression of the same ad: on the same partition, it is counted after the repeat was seen.
        time.Offset = TimeSpan.FromMinutes(-1);
        using (var connection = await ConnectionMultiplexer.ConnectAsync(redis.ConnectionString + ",allowAdmin=true"))
        {
            await connection.GetServers().Single().FlushAllDatabasesAsync();
        }

        await ClickAsync(host, token);
        await ClickAsync(host, await host.MintAsync(AdId));
        var second = ClickRows.Minute(time.GetUtcNow());
        Assert.NotEqual(first, second);

        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await host.Database.ScalarAsync<long>(
                   "SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = $1 AND minute = $2 AND final", AdId, second) == 0
               && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
        }

        // Ingest accepted the repeat (Redis had forgotten the impression): two records of it in the raw log.
        var raw = TopicReader.ReadClicks(host.Broker).Where(r => r.Message.Value.AdId == AdId).ToList();
        Assert.Equal(3, raw.Count);
        Assert.Equal(2, raw.GroupBy(r => r.Message.Value.ImpressionId).Max(g => g.Count()));

        // The stream counted the impression once, in the minute of its first click.
        Assert.Equal(1, await MinuteClicksAsync(host, first));
        Assert.Equal(1, await MinuteClicksAsync(host, second));

        // Reconciliation agrees, over a range holding only the repeat and over one holding both clicks.
        var reconciler = host.App.Services.GetRequiredService<ClickReconciler>();
        var now = time.GetUtcNow().UtcDateTime;
        foreach (var from in new[] { second.UtcDateTime, first.UtcDateTime.AddMinutes(-5) })
        {
            var report = await reconciler.RunAsync(new ReconcileRequest(from, now.AddMinutes(2), AdId, DryRun: true), null, default);
            Assert.Empty(report.LargestDifferences);
            Assert.Equal(from == second.UtcDateTime ? 1 : 2, report.RawClicks);
        }
    }

    private static async Task ClickAsync(ProductHost host, string token)
    {
        using var response = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
    }

    private static Task<long> MinuteClicksAsync(ProductHost host, DateTimeOffset minute) =>
        host.Database.ScalarAsync<long>("SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = $1 AND minute = $2", AdId, minute);

    /// <summary>The system clock moved by <see cref="Offset"/>.</summary>
    private sealed class ShiftedTime : TimeProvider
    {
        public TimeSpan Offset { get; set; }

        public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;
    }
}
