using System.Net;
using System.Net.Http.Json;
using System.Text;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>The click endpoint against real Redis and PostgreSQL and the embedded broker.</summary>
public class IngestTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const string Counter = "kafkaclicks_ingest_clicks_total";

    private static Task<double> OutcomeAsync(ProductHost host, string outcome) => MetricsScraper.ReadAsync(host.Http, Counter, "outcome", outcome);

    [Fact]
    public async Task Every_outcome_has_its_answer_its_metric_and_only_counted_clicks_reach_the_topic()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest, new Dictionary<string, string?> { ["Impressions:Lifetime"] = "00:00:02" });
        await host.AddAdvertiserAsync(1, 10);
        var before = new Dictionary<string, double>();
        foreach (var outcome in new[] { "counted", "duplicate", "expired", "malformed", "forged", "unknown_ad", "oversized" })
        {
            before[outcome] = await OutcomeAsync(host, outcome);
        }

        var counted = new List<string>();
        for (var i = 0; i < 5; i++)
        {
            var token = await host.MintAsync(10);
            using var click = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
            counted.Add(token);
        }

        using (var duplicate = await host.Http.GetAsync(new Uri($"/c/{counted[0]}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Redirect, duplicate.StatusCode);
            Assert.Equal(ProductHost.AdUrl(10), duplicate.Headers.Location?.ToString());
        }

        var expiring = await host.MintAsync(10);
        await Task.Delay(TimeSpan.FromSeconds(2.5));
        using (var expired = await host.Http.GetAsync(new Uri($"/c/{expiring}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Redirect, expired.StatusCode);
            Assert.Equal(ProductHost.AdUrl(10), expired.Headers.Location?.ToString());
        }

        var unknownAd = host.App.Services.GetRequiredService<ImpressionTokens>().Mint(999).Token;
        using (var response = await host.Http.GetAsync(new Uri($"/c/{unknownAd}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        }

        using (var response = await host.Http.GetAsync(new Uri("/c/garbage", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }

        var forged = ProductHost.Forge(counted[1]);
        using (var response = await host.Http.GetAsync(new Uri($"/c/{forged}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.BadRequest, response.StatusCode);
        }

        using (var response = await host.Http.PostAsync(new Uri("/v1/clicks", UriKind.Relative),
            new StringContent($"{{\"token\":\"{new string('A', 5000)}\"}}", Encoding.UTF8, "application/json")))
        {
            Assert.Equal(HttpStatusCode.RequestEntityTooLarge, response.StatusCode);
        }

        foreach (var (outcome, delta) in new[] { ("counted", 5), ("duplicate", 1), ("expired", 1), ("unknown_ad", 1), ("malformed", 1), ("forged", 1), ("oversized", 1) })
        {
            Assert.Equal(before[outcome] + delta, await OutcomeAsync(host, outcome));
        }

        var events = await host.ReadClicksAsync();
        Assert.Equal(5, events.Count);
        Assert.All(events, e =>
        {
            Assert.Equal(10, e.Message.Value.AdId);
            Assert.Equal(1, e.Message.Value.AdvertiserId);
            Assert.Equal(e.Message.Key, e.Message.Value.ImpressionId);
            Assert.True(e.Message.Value.DedupeChecked);
            Assert.Equal(ClickPartitioning.PartitionFor(10, 0, 8), e.Partition.Value);
        });
        Assert.Equal(5, events.Select(e => e.Message.Key).Distinct().Count());
    }

    [Fact]
    public async Task The_redirect_is_the_ads_registered_url_whatever_the_request_says()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        await host.AddAdvertiserAsync(1, 20, 21);
        var token = await host.MintAsync(20);

        using var get = await host.Http.GetAsync(new Uri($"/c/{token}?url=https://evil.example/&redirect=https://evil.example/&adId=21", UriKind.Relative));
        Assert.Equal(ProductHost.AdUrl(20), get.Headers.Location?.ToString());

        var other = await host.MintAsync(21);
        using var post = await host.Http.PostAsJsonAsync(new Uri("/v1/clicks", UriKind.Relative), new { token = other, url = "https://evil.example/", adId = 20 });
        Assert.Equal(HttpStatusCode.Redirect, post.StatusCode);
        Assert.Equal(ProductHost.AdUrl(21), post.Headers.Location?.ToString());
    }

    [Fact]
    public async Task An_ad_registered_with_a_non_ascii_url_is_redirected_in_ascii_and_one_that_cannot_be_redirected_to_is_refused_and_not_counted()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        await host.AddAdvertiserAsync(1);
        await host.Database.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES (40, 1, 'https://bücher.example/sommer/été'), (41, 1, 'https://bank.example@evil.example/')");
        var countedBefore = await OutcomeAsync(host, "counted");
        var unroutableBefore = await OutcomeAsync(host, "unroutable_ad");

        using (var click = await host.Http.GetAsync(new Uri($"/c/{await host.MintAsync(40)}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
            Assert.Equal("https://xn--bcher-kva.example/sommer/%C3%A9t%C3%A9", click.Headers.Location?.OriginalString);
        }

        // No impression is minted for an ad that cannot be clicked, and a token minted anyway is refused.
        using var mintRequest = new HttpRequestMessage(HttpMethod.Post, "/v1/impressions") { Content = JsonContent.Create(new { adId = 41 }) };
        mintRequest.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ProductHost.FrontendKey);
        using (var mint = await host.Http.SendAsync(mintRequest))
        {
            Assert.Equal(HttpStatusCode.NotFound, mint.StatusCode);
            Assert.Equal("unroutable-ad", (await mint.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("reason").GetString());
        }

        var token = host.App.Services.GetRequiredService<ImpressionTokens>().Mint(41).Token;
        using (var click = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.NotFound, click.StatusCode);
            Assert.Null(click.Headers.Location);
            Assert.Equal("unroutable-ad", (await click.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("reason").GetString());
        }

        // /metrics answers from a scrape cached for a few hundred milliseconds.
        await Task.Delay(TimeSpan.FromSeconds(1));
        Assert.Equal(countedBefore + 1, await OutcomeAsync(host, "counted"));
        Assert.Equal(unroutableBefore + 1, await OutcomeAsync(host, "unroutable_ad"));
        var events = await host.ReadClicksAsync();
        Assert.Equal([40L], events.Select(e => e.Message.Value.AdId));
    }

    [Fact]
    public async Task An_ingest_only_process_documents_its_routes_in_openapi()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        using var document = JsonDocument.Parse(await host.Http.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)));
        var paths = document.RootElement.GetProperty("paths");
        Assert.True(paths.GetProperty("/v1/impressions").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/v1/clicks").TryGetProperty("post", out _));
        Assert.True(paths.GetProperty("/c/{token}").TryGetProperty("get", out _));
        Assert.False(paths.TryGetProperty("/v1/top", out _), "an ingest-only process does not serve the query API");
        Assert.Equal("KafkaClicks API", document.RootElement.GetProperty("info").GetProperty("title").GetString());
    }

    [Fact]
    public async Task With_redis_down_clicks_are_still_accepted_unchecked_and_dedupe_resumes_when_it_is_back()
    {
        await using var redis = await PrivateRedis.StartAsync();
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest, new Dictionary<string, string?>
        {
            ["ConnectionStrings:Redis"] = redis.ConnectionString,
            ["Ingest:DedupeTimeout"] = "00:00:00.200",
        });
        await host.AddAdvertiserAsync(1, 30);
        // Start from a connected client, so the first click is checked against Redis.
        var multiplexer = host.App.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>();
        for (var wait = 0; wait < 100 && !multiplexer.IsConnected; wait++)
        {
            await Task.Delay(100);
        }

        Assert.True(multiplexer.IsConnected);
        var checkedToken = await host.MintAsync(30);
        using (var click = await host.Http.GetAsync(new Uri($"/c/{checkedToken}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
        }

        await redis.StopAsync();
        var uncheckedToken = await host.MintAsync(30);
        for (var i = 0; i < 2; i++)
        {
            using var click = await host.Http.GetAsync(new Uri($"/c/{uncheckedToken}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
            Assert.Equal(ProductHost.AdUrl(30), click.Headers.Location?.ToString());
        }

        await redis.StartAgainAsync();

        // Once the client has reconnected, a fresh impression is checked again and its repeat is a duplicate.
        string? recovered = null;
        var deadline = DateTime.UtcNow.AddSeconds(20);
        while (recovered is null && DateTime.UtcNow < deadline)
        {
            var token = await host.MintAsync(30);
            using (await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative)))
            {
            }

            var id = ImpressionOf(host, token);
            if ((await host.ReadClicksAsync()).Any(e => e.Message.Key == id && e.Message.Value.DedupeChecked))
            {
                recovered = token;
            }
        }

        Assert.NotNull(recovered);
        using (var again = await host.Http.GetAsync(new Uri($"/c/{recovered}", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Redirect, again.StatusCode);
        }

        var events = (await host.ReadClicksAsync()).Select(e => e.Message.Value).ToList();
        var first = Assert.Single(events, e => e.ImpressionId == ImpressionOf(host, checkedToken));
        Assert.True(first.DedupeChecked);
        var whileDown = events.Where(e => e.ImpressionId == ImpressionOf(host, uncheckedToken)).ToList();
        Assert.Equal(2, whileDown.Count);
        Assert.All(whileDown, e => Assert.False(e.DedupeChecked));
        Assert.True(Assert.Single(events, e => e.ImpressionId == ImpressionOf(host, recovered!)).DedupeChecked);
    }

    private static string ImpressionOf(ProductHost host, string token)
    {
        Assert.Equal(TokenStatus.Authentic, host.App.Services.GetRequiredService<ImpressionTokens>().Verify(token, out var claims));
        return claims.ImpressionKey;
    }

    [Fact]
    public async Task A_click_keeps_what_a_dispute_desk_needs_the_clients_network_a_user_agent_hash_and_the_referring_host()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        await host.AddAdvertiserAsync(1, 13);
        const string userAgent = "Mozilla/5.0 (X11; Linux x86_64) KafkaClicksTest/1.0";
        var token = await host.MintAsync(13);
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/c/{token}"))
        {
            // The test client connects over loopback, a trusted proxy: its X-Forwarded-For names the client.
            request.Headers.Add("X-Forwarded-For", "203.0.113.77");
            request.Headers.UserAgent.ParseAdd(userAgent);
            request.Headers.Referrer = new Uri("https://News.Example.org/article/42?utm=x");
            using var click = await host.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
        }

        var bare = await host.MintAsync(13);
        using (var request = new HttpRequestMessage(HttpMethod.Get, $"/c/{bare}"))
        {
            request.Headers.Add("X-Forwarded-For", "2001:db8:abcd:12:1:2:3:4");
            using var click = await host.Http.SendAsync(request);
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
        }

        var events = (await host.ReadClicksAsync()).Select(e => e.Message.Value).ToDictionary(e => e.ImpressionId);
        var described = events[ImpressionOf(host, token)];
        Assert.Equal("203.0.113.0/24", described.ClientNetwork);
        Assert.Equal(Convert.ToHexStringLower(System.Security.Cryptography.SHA256.HashData(Encoding.UTF8.GetBytes(userAgent)))[..16], described.UserAgentHash);
        Assert.Equal("news.example.org", described.ReferrerHost);
        var plain = events[ImpressionOf(host, bare)];
        Assert.Equal("2001:db8:abcd::/48", plain.ClientNetwork);
        Assert.Equal((string.Empty, string.Empty), (plain.UserAgentHash, plain.ReferrerHost));
    }

    [Fact]
    public async Task Click_links_point_at_the_configured_public_base_url_whatever_Host_header_the_caller_sends()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        await host.AddAdvertiserAsync(1, 12);
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/impressions") { Content = JsonContent.Create(new { adId = 12 }) };
        request.Headers.Authorization = new System.Net.Http.Headers.AuthenticationHeaderValue("Bearer", ProductHost.FrontendKey);
        request.Headers.Host = "attacker.example";
        using var response = await host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        using var body = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        var token = body.RootElement.GetProperty("token").GetString();
        Assert.Equal($"{ProductHost.PublicBaseUrl}/c/{token}", body.RootElement.GetProperty("clickUrl").GetString());
    }

    [Fact]
    public async Task A_hot_ad_is_spread_over_salts_and_each_impression_keeps_its_salt()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest, new Dictionary<string, string?>
        {
            ["Ingest:HotAds:ThresholdPerSecond"] = "5",
            ["Ingest:HotAds:Salts"] = "4",
        });
        await host.AddAdvertiserAsync(1, 40);
        var tokens = new List<string>();
        for (var i = 0; i < 60; i++)
        {
            tokens.Add(await host.MintAsync(40));
        }

        foreach (var token in tokens)
        {
            using var click = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
        }

        var events = await host.ReadClicksAsync();
        Assert.Equal(60, events.Count);
        var salted = events.Where(e => e.Message.Value.Salt != 0).ToList();
        Assert.NotEmpty(salted);
        Assert.True(events.Select(e => e.Message.Value.Salt).Distinct().Count() > 1);
        Assert.All(events, e =>
        {
            Assert.InRange(e.Message.Value.Salt, 0, 3);
            Assert.Equal(ClickPartitioning.PartitionFor(40, e.Message.Value.Salt, 8), e.Partition.Value);
        });
        Assert.All(salted, e => Assert.Equal(ClickPartitioning.SaltFor(e.Message.Value.ImpressionId, 4), e.Message.Value.Salt));
    }

    [Fact]
    public async Task The_callers_trace_context_travels_in_the_kafka_headers()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        await host.AddAdvertiserAsync(1, 50);
        var token = await host.MintAsync(50);
        const string traceId = "4bf92f3577b34da6a3ce929d0e0e4736";
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/c/{token}");
        request.Headers.Add("traceparent", $"00-{traceId}-00f067aa0ba902b7-01");
        using var click = await host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);

        var message = Assert.Single(await host.ReadClicksAsync()).Message;
        Assert.True(message.Headers.TryGetLastBytes("traceparent", out var header));
        Assert.Contains(traceId, Encoding.ASCII.GetString(header), StringComparison.Ordinal);
    }
}
