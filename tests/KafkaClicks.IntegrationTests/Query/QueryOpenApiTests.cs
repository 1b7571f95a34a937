using System.Net.Http.Headers;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using static KafkaClicks.IntegrationTests.Infrastructure.ClickRows;

namespace KafkaClicks.IntegrationTests.Query;

/// <summary>
/// Clients generated from the OpenAPI document handle only the answers it declares: every answer a query route gives,
/// each failure path provoked for real, must be declared for that route with the content type it is sent with.
/// </summary>
public class QueryOpenApiTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const string Admin = ProductHost.AdminKey;
    private const string AdClicks = "/v1/ads/{adId}/clicks";
    private const string AdvertiserClicks = "/v1/advertisers/{advertiserId}/clicks";
    private const string Top = "/v1/top";
    private const string Advertisers = "/v1/advertisers";
    private const string AdvertiserAds = "/v1/advertisers/{advertiserId}/ads";
    private const string Runs = "/v1/reconciliation/runs";

    /// <summary>A request of each route: its documented path and a concrete one.</summary>
    private static readonly (string Route, string Path)[] Samples =
    [
        (AdClicks, "/v1/ads/11/clicks"), (AdvertiserClicks, "/v1/advertisers/1/clicks"), (Top, "/v1/top"),
        (Advertisers, "/v1/advertisers"), (AdvertiserAds, "/v1/advertisers/1/ads"), (Runs, "/v1/reconciliation/runs"),
    ];

    [Fact]
    public async Task Every_answer_a_query_route_gives_is_declared_for_it_in_the_openapi_document()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            // One database slot and no queue: while a query holds the slot, every other one that needs it is overloaded.
            ["Query:MaxConcurrentQueries"] = "1",
            ["Query:QueueLimit"] = "0",
            ["Query:CacheEnabled"] = "false",
            // Two requests without a valid key, then one a second: 401 and 429 are both quick to provoke.
            ["Query:RateLimits:AnonymousPerSecond"] = "1",
            ["Query:RateLimits:AnonymousBurst"] = "2",
        });
        var own = await host.AddAdvertiserAsync(1, 11);
        var other = await host.AddAdvertiserAsync(2, 21);
        using var document = JsonDocument.Parse(await host.Http.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)));
        var answers = new Answers(host, document.RootElement.GetProperty("paths"));

        var old = "from=2020-01-01&to=2020-01-02&granularity=1d";
        foreach (var (route, path, key, status) in new (string, string, string, int)[]
        {
            (AdClicks, "/v1/ads/11/clicks", own, 200),
            (AdClicks, "/v1/ads/11/clicks?granularity=2m", own, 400),
            (AdClicks, $"/v1/ads/11/clicks?{old}", own, 400),
            (AdClicks, "/v1/ads/21/clicks", own, 404),
            (AdClicks, "/v1/ads/eleven/clicks", own, 404),
            (AdvertiserClicks, "/v1/advertisers/1/clicks?breakdown=ad", own, 200),
            (AdvertiserClicks, "/v1/advertisers/1/clicks?from=soon", own, 400),
            (AdvertiserClicks, "/v1/advertisers/1/clicks?breakdown=campaign", own, 400),
            (AdvertiserClicks, "/v1/advertisers/2/clicks", own, 404),
            (AdvertiserClicks, "/v1/advertisers/first/clicks", Admin, 404),
            (Top, "/v1/top?limit=5", own, 200),
            (Top, "/v1/top?window=0m", own, 400),
            (Top, "/v1/top?advertiserId=2", own, 404),
            (Advertisers, "/v1/advertisers", other, 200),
            (Advertisers, "/v1/advertisers?limit=0", other, 400),
            (AdvertiserAds, "/v1/advertisers/1/ads?limit=1", own, 200),
            (AdvertiserAds, "/v1/advertisers/1/ads?after=ten", own, 400),
            (AdvertiserAds, "/v1/advertisers/1/ads?q=11", own, 200),
            (AdvertiserAds, "/v1/advertisers/1/ads?q=", own, 400),
            (AdvertiserAds, "/v1/advertisers/2/ads", own, 404),
            (AdvertiserAds, "/v1/advertisers/first/ads", Admin, 404),
            (Runs, "/v1/reconciliation/runs", Admin, 200),
            (Runs, "/v1/reconciliation/runs?last=0", Admin, 400),
            (Runs, "/v1/reconciliation/runs", own, 403),
        })
        {
            await answers.ProvokeAsync(route, path, key, status);
        }

        // Without a key, with a key nobody has, and beyond the anonymous allowance.
        foreach (var (route, path) in Samples)
        {
            await answers.ProvokeAsync(route, path, null, 401);
            await answers.ProvokeAsync(route, path, "guess-" + Guid.NewGuid().ToString("N"), 401);
            await answers.ProvokeAsync(route, path, null, 429);
        }

        // Overloaded: a query holds the only database slot, waiting on a locked table.
        await using (var connection = await host.Database.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await ClickRows.LockMinutesAsync(connection, transaction);

            var holding = host.GetAsync("/v1/ads/11/clicks?granularity=5m", Admin);
            await WaitForQueryBlockedOnLockAsync(host.Database);
            foreach (var (route, path) in Samples)
            {
                await answers.ProvokeAsync(route, path, Admin, 503);
            }

            await transaction.RollbackAsync();
            using var answered = await holding;
            answers.AssertDeclared(AdClicks, answered);
        }

        Assert.Equal(Samples.Length, answers.Routes);
    }

    /// <summary>Sends requests and checks each answer against the route's declared responses.</summary>
    private sealed class Answers(ProductHost host, JsonElement paths)
    {
        private readonly HashSet<string> _routes = [];

        public int Routes => _routes.Count;

        /// <summary>
        /// Sends the request until it is answered <paramref name="status"/> (401 and 429 depend on the anonymous allowance
        /// left, which refills a request a second), at most 10 s; every answer on the way must be declared too.
        /// </summary>
        public async Task ProvokeAsync(string route, string path, string? key, int status)
        {
            var deadline = DateTime.UtcNow.AddSeconds(10);
            while (true)
            {
                using var request = new HttpRequestMessage(HttpMethod.Get, path);
                if (key is not null)
                {
                    request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", key);
                }

                using var response = await host.Http.SendAsync(request);
                AssertDeclared(route, response);
                if ((int)response.StatusCode == status)
                {
                    return;
                }

                Assert.True(DateTime.UtcNow < deadline, $"{path}: expected {status}, still {(int)response.StatusCode} after 10 s");
                await Task.Delay(200);
            }
        }

        public void AssertDeclared(string route, HttpResponseMessage response)
        {
            _routes.Add(route);
            var status = ((int)response.StatusCode).ToString(System.Globalization.CultureInfo.InvariantCulture);
            var responses = paths.GetProperty(route).GetProperty("get").GetProperty("responses");
            Assert.True(responses.TryGetProperty(status, out var declared),
                $"GET {route} answered {status} ({response.RequestMessage?.RequestUri?.PathAndQuery}), which its OpenAPI operation does not declare: it declares {string.Join(", ", responses.EnumerateObject().Select(r => r.Name))}");
            var mediaType = response.Content.Headers.ContentType?.MediaType;
            Assert.True(declared.TryGetProperty("content", out var content) && content.TryGetProperty(mediaType!, out _),
                $"GET {route} answered {status} as {mediaType}, which its OpenAPI operation does not declare for {status}");
        }
    }
}
