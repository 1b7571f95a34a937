using System.Net;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>
/// A click whose process dies after claiming its impression in Redis and before its event is durable (kill -9, OOM,
/// node loss) must not take the user's retry with it: the retry, here or on another instance, is counted, once.
/// </summary>
[Trait("Category", "Billing")]
public sealed class ClaimCrashTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task The_retry_of_a_click_that_died_between_claim_and_produce_is_counted_once()
    {
        // Redis answers within the default 250 ms on a quiet host; on a loaded one the first claim after start may not,
        // and an unchecked claim is not the dead claim this test is about.
        await using var host = await ProductHost.StartAsync(postgres, Role.All, new Dictionary<string, string?> { ["Ingest:DedupeTimeout"] = "00:00:05" });
        await host.AddAdvertiserAsync(1, 70);
        var minted = host.App.Services.GetRequiredService<ImpressionTokens>().Mint(70);
        var impression = Guid.Parse(minted.ImpressionId).ToString("N");

        // The dead click: its claim reached Redis, its event never reached the broker or the spool.
        var crashed = await host.App.Services.GetRequiredService<ImpressionDeduplicator>().ClaimAsync(impression, minted.ExpiresAt, TimeProvider.System);
        Assert.Equal(DedupeResult.New, crashed.Result);

        // The user's retry, then a true repeat of it.
        foreach (var _ in new[] { "retry", "repeat" })
        {
            using var click = await host.Http.GetAsync(new Uri($"/c/{minted.Token}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
            Assert.Equal(ProductHost.AdUrl(70), click.Headers.Location?.ToString());
        }

        Assert.Single(await host.ReadClicksAsync(), r => r.Message.Key == impression);
        var deadline = DateTime.UtcNow.AddSeconds(30);
        long stored;
        while ((stored = await host.Database.ScalarAsync<long>("SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = 70")) < 1
            && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
        }

        Assert.Equal(1L, stored);
    }
}
