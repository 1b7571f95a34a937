using System.Diagnostics;
using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Hostile;

/// <summary>
/// What an anonymous or over-eager caller can cost: per-key and per-client-network limits on the query API and on
/// POST /v1/impressions answer 429 as ProblemDetails (counted), one caller's limit never touches another's, and random
/// API keys cost a database lookup only within their network's anonymous allowance.
/// </summary>
public sealed class RateLimitTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const string Limited = "kafkaclicks_http_rate_limited_total";

    [Fact]
    public async Task A_query_key_over_its_limit_gets_429_and_other_keys_do_not_notice()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            ["Query:RateLimits:PerKeyPerSecond"] = "1",
            ["Query:RateLimits:PerKeyBurst"] = "3",
        });
        var busy = await host.AddAdvertiserAsync(1, 10);
        var quiet = await host.AddAdvertiserAsync(2, 20);
        var before = await MetricsScraper.ReadFreshAsync(host.Http, Limited, "api", "query");

        var clock = Stopwatch.StartNew();
        var statuses = new List<HttpStatusCode>();
        HttpResponseMessage? refused = null;
        for (var i = 0; i < 12; i++)
        {
            var response = await host.GetAsync("/v1/ads/10/clicks", busy);
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests && refused is null)
            {
                refused = response;
            }
            else
            {
                response.Dispose();
            }
        }

        // The bucket holds 3 and gains 1 a second: of 12 requests, at most 3 plus one per second elapsed get through.
        Assert.All(statuses.Take(3), s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.InRange(statuses.Count(s => s == HttpStatusCode.OK), 3, 3 + (int)Math.Ceiling(clock.Elapsed.TotalSeconds));
        Assert.NotNull(refused);
        await AssertRateLimitedAsync(refused!);
        refused!.Dispose();

        using (var other = await host.GetAsync("/v1/ads/20/clicks", quiet))
        {
            Assert.Equal(HttpStatusCode.OK, other.StatusCode);
        }

        Assert.True(await MetricsScraper.ReadFreshAsync(host.Http, Limited, "api", "query") > before);
    }

    [Fact]
    public async Task Random_api_keys_cost_a_database_lookup_only_within_the_anonymous_allowance()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            ["Query:RateLimits:AnonymousPerSecond"] = "1",
            ["Query:RateLimits:AnonymousBurst"] = "5",
        });
        var key = await host.AddAdvertiserAsync(1, 10);
        var lookupsBefore = await LookupsAsync(host);

        var clock = Stopwatch.StartNew();
        var statuses = new List<HttpStatusCode>();
        for (var i = 0; i < 40; i++)
        {
            using var response = await host.GetAsync("/v1/advertisers", "guess-" + Guid.NewGuid().ToString("N"));
            statuses.Add(response.StatusCode);
            if (response.StatusCode == HttpStatusCode.TooManyRequests)
            {
                await AssertRateLimitedAsync(response);
            }
        }

        var lookups = await LookupsAsync(host) - lookupsBefore;
        Assert.All(statuses, s => Assert.Contains(s, new[] { HttpStatusCode.Unauthorized, HttpStatusCode.TooManyRequests }));
        Assert.InRange(lookups, 5, 5 + Math.Ceiling(clock.Elapsed.TotalSeconds));
        Assert.Equal(lookups, statuses.Count(s => s == HttpStatusCode.Unauthorized));

        // A real key from another network is looked up and served: the guesser's network spent only its own allowance.
        using var request = new HttpRequestMessage(HttpMethod.Get, "/v1/advertisers");
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        request.Headers.Add("X-Forwarded-For", "198.51.100.7");
        using var served = await host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.OK, served.StatusCode);
    }

    [Fact]
    public async Task Requests_outside_the_query_api_take_nothing_from_its_anonymous_allowance()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            ["Query:RateLimits:AnonymousPerSecond"] = "1",
            ["Query:RateLimits:AnonymousBurst"] = "2",
        });

        // Health checks, the dashboard and the OpenAPI document, from the same network and with a key nobody has.
        foreach (var path in new[] { "/healthz", "/", "/openapi/v1.json", "/healthz", "/", "/openapi/v1.json" })
        {
            using var response = await host.GetAsync(path, "guess-" + Guid.NewGuid().ToString("N"));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        }

        // The whole burst is left for the query API.
        for (var i = 0; i < 2; i++)
        {
            using var response = await host.Http.GetAsync(new Uri("/v1/top", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Unauthorized, response.StatusCode);
        }
    }

    [Fact]
    public async Task Minting_is_limited_per_frontend_key_and_callers_without_a_key_per_network()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest, new Dictionary<string, string?>
        {
            ["Ingest:RateLimits:PerKeyPerSecond"] = "1",
            ["Ingest:RateLimits:PerKeyBurst"] = "3",
            ["Ingest:RateLimits:AnonymousPerSecond"] = "1",
            ["Ingest:RateLimits:AnonymousBurst"] = "2",
        });
        await host.AddAdvertiserAsync(1, 10);
        var before = await MetricsScraper.ReadFreshAsync(host.Http, Limited, "api", "ingest");

        var keyed = new List<HttpStatusCode>();
        var anonymous = new List<HttpStatusCode>();
        var clock = Stopwatch.StartNew();
        for (var i = 0; i < 10; i++)
        {
            keyed.Add(await MintStatusAsync(host, ProductHost.FrontendKey));
            anonymous.Add(await MintStatusAsync(host, "not-a-frontend-key"));
        }

        var allowance = (int)Math.Ceiling(clock.Elapsed.TotalSeconds);
        Assert.All(keyed.Take(3), s => Assert.Equal(HttpStatusCode.OK, s));
        Assert.InRange(keyed.Count(s => s == HttpStatusCode.OK), 3, 3 + allowance);
        Assert.Contains(HttpStatusCode.TooManyRequests, keyed);
        Assert.All(anonymous.Take(2), s => Assert.Equal(HttpStatusCode.Unauthorized, s));
        Assert.InRange(anonymous.Count(s => s == HttpStatusCode.Unauthorized), 2, 2 + allowance);
        Assert.Contains(HttpStatusCode.TooManyRequests, anonymous);
        Assert.True(await MetricsScraper.ReadFreshAsync(host.Http, Limited, "api", "ingest") >= before + keyed.Concat(anonymous).Count(s => s == HttpStatusCode.TooManyRequests));
    }

    private static async Task<HttpStatusCode> MintStatusAsync(ProductHost host, string key)
    {
        using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/impressions") { Content = JsonContent.Create(new { adId = 10 }) };
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
        using var response = await host.Http.SendAsync(request);
        if (response.StatusCode == HttpStatusCode.TooManyRequests)
        {
            await AssertRateLimitedAsync(response);
        }

        return response.StatusCode;
    }

    private static async Task AssertRateLimitedAsync(HttpResponseMessage response)
    {
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var problem = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("rate-limited", problem.RootElement.GetProperty("reason").GetString());
        Assert.Equal(429, problem.RootElement.GetProperty("status").GetInt32());
        Assert.Equal(TimeSpan.FromSeconds(1), response.Headers.RetryAfter?.Delta);
    }

    private static async Task<double> LookupsAsync(ProductHost host) =>
        await MetricsScraper.ReadFreshAsync(host.Http, "kafkaclicks_query_key_lookups_total", "result", "unknown");
}
