using System.Net;
using System.Security.Cryptography;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>
/// A repeat of an impression that Redis did not stop (keys lost in a restart or failover, a click accepted unchecked)
/// is dropped by the aggregator only if it lands on the same clicks.raw partition as the first click. So the
/// partition must follow from the impression alone, never from which instance takes the click or how hot that
/// instance thinks the ad is at that moment.
/// </summary>
[Trait("Category", "Billing")]
public sealed class ImpressionSaltTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const long Ad = 80;
    private const int Impressions = 24;

    [Fact]
    public async Task Repeats_taken_by_instances_with_different_hot_ad_views_land_on_one_partition_and_count_once()
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        // Instance A thinks every ad is hot from its first impression or click; instance B never does.
        await using var hot = await ProductHost.StartAsync(postgres, Role.All, new Dictionary<string, string?>
        {
            ["Ingest:Tokens:Keys:t1"] = key,
            ["Ingest:HotAds:ThresholdPerSecond"] = "0.5",
            ["Ingest:HotAds:Salts"] = "4",
        });
        await using var cold = await ProductHost.StartAsync(postgres, Role.Ingest, new Dictionary<string, string?>
        {
            ["Ingest:Tokens:Keys:t1"] = key,
            ["Ingest:HotAds:ThresholdPerSecond"] = "1000000000",
            ["Kafka:BootstrapServers"] = hot.Broker.BootstrapServers,
            ["Kafka:NamePrefix"] = hot.Broker.Names.Prefix,
            ["Aggregator:ApplicationId"] = hot.App.Configuration["Aggregator:ApplicationId"],
        });
        await hot.AddAdvertiserAsync(1, Ad);
        await cold.AddAdvertiserAsync(1, Ad);

        var tokens = new List<string>();
        for (var i = 0; i < Impressions; i++)
        {
            tokens.Add(await hot.MintAsync(Ad));
        }

        // Each impression is clicked on one instance, loses its Redis claim, and is clicked again on the other.
        var redis = hot.App.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>().GetDatabase();
        for (var i = 0; i < tokens.Count; i++)
        {
            var (first, second) = i % 2 == 0 ? (hot, cold) : (cold, hot);
            await ClickAsync(first, tokens[i]);
            Assert.True(await redis.KeyDeleteAsync("click:imp:" + ImpressionOf(hot, tokens[i])));
            await ClickAsync(second, tokens[i]);
        }

        await cold.ClicksOnBrokerAsync();
        var events = await hot.ReadClicksAsync();
        Assert.Equal(2 * Impressions, events.Count);
        Assert.All(events.GroupBy(e => e.Message.Value.ImpressionId), repeats =>
        {
            Assert.Equal(2, repeats.Count());
            Assert.Single(repeats.Select(e => e.Partition.Value).Distinct());
        });
        Assert.True(events.Select(e => e.Message.Value.Salt).Distinct().Count() > 1, "the hot ad's impressions are spread over salts");

        // The aggregator drops every repeat: each impression is stored once.
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (await StoredAsync(hot) < Impressions && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
        }

        await Task.Delay(TimeSpan.FromSeconds(3)); // a few more emit intervals, for a double count to show up
        Assert.Equal(Impressions, await StoredAsync(hot));
    }

    private static async Task ClickAsync(ProductHost host, string token)
    {
        using var click = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
    }

    private static Task<long> StoredAsync(ProductHost host) =>
        host.Database.ScalarAsync<long>($"SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = {Ad}");

    private static string ImpressionOf(ProductHost host, string token)
    {
        Assert.Equal(TokenStatus.Authentic, host.App.Services.GetRequiredService<ImpressionTokens>().Verify(token, out var claims));
        return claims.ImpressionKey;
    }
}
