using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.EndToEnd;

/// <summary>A click travels the whole path: mint, click (302 after the broker acked), aggregate, sink, query.</summary>
public class WalkingSkeletonTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Clicks_across_several_ads_are_counted_exactly_once_per_impression()
    {
        await using var host = await ProductHost.StartAsync(postgres);
        long[] ads = [101, 102, 103, 104, 105];
        var ownerKey = await host.AddAdvertiserAsync(1, ads);
        var otherKey = await host.AddAdvertiserAsync(2, 201);

        var expected = ads.ToDictionary(a => a, _ => 0L);
        for (var i = 0; i < 300; i++)
        {
            var adId = ads[i % ads.Length];
            var token = await host.MintAsync(adId);
            using var click = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
            Assert.Equal(ProductHost.AdUrl(adId), click.Headers.Location?.ToString());
            expected[adId]++;
            if (i % 10 == 0)
            {
                // The same impression clicked again: redirected, never counted.
                using var again = await host.Http.PostAsJsonAsync(new Uri("/v1/clicks", UriKind.Relative), new { token });
                Assert.Equal(HttpStatusCode.Redirect, again.StatusCode);
                Assert.Equal(ProductHost.AdUrl(adId), again.Headers.Location?.ToString());
            }
        }

        var from = DateTimeOffset.UtcNow.AddHours(-1).ToString("O");
        var to = DateTimeOffset.UtcNow.AddHours(1).ToString("O");
        var deadline = DateTime.UtcNow.AddSeconds(60);
        Dictionary<long, long> actual;
        do
        {
            await Task.Delay(500);
            actual = [];
            foreach (var adId in ads)
            {
                using var response = await host.GetAsync($"/v1/ads/{adId}/clicks?from={Uri.EscapeDataString(from)}&to={Uri.EscapeDataString(to)}&granularity=1m", ownerKey);
                Assert.Equal(HttpStatusCode.OK, response.StatusCode);
                using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
                actual[adId] = json.RootElement.GetProperty("total").GetInt64();
                Assert.Equal(actual[adId], json.RootElement.GetProperty("points").EnumerateArray().Sum(p => p.GetProperty("clicks").GetInt64()));
            }
        }
        while (!expected.All(e => actual[e.Key] == e.Value) && DateTime.UtcNow < deadline);

        Assert.Equal(expected, actual);

        // Another advertiser cannot see (or probe) these ads; the admin key sees them.
        using var foreign = await host.GetAsync($"/v1/ads/{ads[0]}/clicks", otherKey);
        Assert.Equal(HttpStatusCode.NotFound, foreign.StatusCode);
        using var admin = await host.GetAsync($"/v1/ads/{ads[0]}/clicks?from={Uri.EscapeDataString(from)}&to={Uri.EscapeDataString(to)}", ProductHost.AdminKey);
        Assert.Equal(HttpStatusCode.OK, admin.StatusCode);
    }

    [Fact]
    public async Task Bad_clicks_get_problem_details_and_no_redirect()
    {
        await using var host = await ProductHost.StartAsync(postgres);
        await host.AddAdvertiserAsync(1, 11);
        var token = await host.MintAsync(11);
        var forged = ProductHost.Forge(token);

        foreach (var (path, status, reason) in new[]
        {
            ("/c/not-a-token", HttpStatusCode.BadRequest, "malformed-token"),
            ($"/c/{forged}", HttpStatusCode.BadRequest, "forged-token"),
            ("/c/%F0%9F%92%A5%C3%A9", HttpStatusCode.BadRequest, "malformed-token"),
        })
        {
            using var response = await host.Http.GetAsync(new Uri(path, UriKind.Relative));
            Assert.Equal(status, response.StatusCode);
            Assert.Null(response.Headers.Location);
            Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
            using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
            Assert.Equal(reason, json.RootElement.GetProperty("reason").GetString());
        }

        using var mintUnknown = new HttpRequestMessage(HttpMethod.Post, "/v1/impressions") { Content = JsonContent.Create(new { adId = 999 }) };
        mintUnknown.Headers.Authorization = new("Bearer", ProductHost.FrontendKey);
        using (var response = await host.Http.SendAsync(mintUnknown))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        using (var response = await host.Http.PostAsync(new Uri("/v1/clicks", UriKind.Relative),
            new StringContent(new string('x', 10_000), System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }

        using (var response = await host.Http.PostAsync(new Uri("/v1/clicks", UriKind.Relative),
            new StringContent("{\"token\": 12", System.Text.Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }

        using (var response = await host.Http.PostAsJsonAsync(new Uri("/v1/impressions", UriKind.Relative), new { adId = 11 }))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
    }
}
