using System.Net;
using System.Net.Http.Headers;
using System.Net.Http.Json;
using System.Security.Cryptography;
using Confluent.Kafka;
using KafkaClicks.Broker;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using KafkaClicks.Query;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// The whole product in this process, composed exactly as `kafkaclicks up` composes it: this lane's Kafka (an embedded
/// broker of its own, or the cluster under a prefix of its own: <see cref="TestKafka"/>), a fresh migrated database, the
/// shared Redis, and the chosen roles on a free port. Settings are shortened (1 s emits, 2 s grace) so windows close quickly.
/// </summary>
public sealed class ProductHost : IAsyncDisposable
{
    public const string FrontendKey = "test-frontend-key";
    public const string AdminKey = "test-admin-key";

    /// <summary>The base of the click links the test hosts mint (they run outside Development, where it is required).</summary>
    public const string PublicBaseUrl = "https://click.kafkaclicks.test";

    private readonly string _stateDirectory;

    private ProductHost(TestDatabase database, BrokerHandle broker, WebApplication app, string stateDirectory)
    {
        Database = database;
        Broker = broker;
        App = app;
        _stateDirectory = stateDirectory;
        BaseAddress = new Uri(app.Urls.First());
        Http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }) { BaseAddress = BaseAddress };
    }

    public TestDatabase Database { get; }

    public BrokerHandle Broker { get; }

    public WebApplication App { get; }

    public Uri BaseAddress { get; }

    /// <summary>A client that does not follow redirects, so tests see the 302 itself.</summary>
    public HttpClient Http { get; }

    public static async Task<ProductHost> StartAsync(PostgresServer postgres, Role roles = Role.All, IDictionary<string, string?>? settings = null,
        Action<WebApplicationBuilder>? configure = null)
    {
        var database = await postgres.CreateDatabaseAsync();
        var stateDirectory = Path.Combine(Path.GetTempPath(), "kafkaclicks-tests", Guid.NewGuid().ToString("N"));
        var overrides = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Postgres"] = database.ConnectionString,
            ["ConnectionStrings:Redis"] = RedisServer.ConnectionString,
            ["Kafka:ClicksRawPartitions"] = "8",
            ["Kafka:ClicksMinutePartitions"] = "4",
            ["Ingest:Tokens:ActiveKeyId"] = "t1",
            ["Ingest:Tokens:Keys:t1"] = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32)),
            ["Ingest:FrontendApiKeys:0"] = FrontendKey,
            ["Ingest:PublicBaseUrl"] = PublicBaseUrl,
            ["Query:AdminApiKeys:0"] = AdminKey,
            ["Aggregator:ApplicationId"] = "kc-test-" + Guid.NewGuid().ToString("N")[..8],
            ["Aggregator:StateDirectory"] = stateDirectory,
            ["Ingest:AdDirectory:Path"] = Path.Combine(stateDirectory, "ad-directory"),
            ["Ingest:Spool:Directory"] = Path.Combine(stateDirectory, "spool"),
            ["Aggregator:EmitInterval"] = "00:00:01",
            ["Aggregator:Grace"] = "00:00:02",
            ["Sink:MaxBatchDelay"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        foreach (var (key, value) in TestKafka.ForTest().Settings().Concat(settings ?? new Dictionary<string, string?>()))
        {
            overrides[key] = value;
        }

        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        var broker = await KafkaClicksHost.StartBrokerAsync(configuration, roles);
        var app = KafkaClicksHost.Build(roles, broker, overrides, configure);
        await app.StartAsync();
        return new ProductHost(database, broker, app, stateDirectory);
    }

    /// <summary>Adds an advertiser (with an API key) and its ads; returns the key.</summary>
    public async Task<string> AddAdvertiserAsync(long advertiserId, params long[] adIds)
    {
        var key = $"adv-{advertiserId}-{Guid.NewGuid():N}";
        await Database.ExecuteAsync("INSERT INTO advertisers (advertiser_id, name, api_key_hash) VALUES ($1, $2, $3)",
            advertiserId, $"Advertiser {advertiserId}", ApiKeyAuthenticator.Hash(key));
        foreach (var adId in adIds)
        {
            await Database.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES ($1, $2, $3)",
                adId, advertiserId, AdUrl(adId));
        }

        return key;
    }

    public static string AdUrl(long adId) => $"https://advertiser.example/landing/{adId}?utm=kc";

    /// <summary>
    /// The token with one character of its signature changed: still well-formed base64url, so it reads as forged. Not
    /// the last character, whose low bits can be padding that a strict decoder rejects (that would read as malformed).
    /// </summary>
    public static string Forge(string token)
    {
        var i = token.Length - 10;
        return string.Concat(token.AsSpan(0, i), token[i] == 'A' ? "B" : "A", token.AsSpan(i + 1));
    }

    /// <summary>
    /// POST /v1/impressions as a frontend; returns the token. Like a frontend it asks again, for up to 10 s, while the
    /// answer is 503 (an ad just added, looked up under load right after start, can exceed the lookup's time bound).
    /// </summary>
    public async Task<string> MintAsync(long adId)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        HttpResponseMessage response;
        while (true)
        {
            using var request = new HttpRequestMessage(HttpMethod.Post, "/v1/impressions") { Content = JsonContent.Create(new { adId }) };
            request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", FrontendKey);
            response = await Http.SendAsync(request);
            if (response.StatusCode != HttpStatusCode.ServiceUnavailable || DateTime.UtcNow >= deadline)
            {
                break;
            }

            response.Dispose();
            await Task.Delay(250);
        }

        using var _ = response;
        response.EnsureSuccessStatusCode();
        var body = await response.Content.ReadFromJsonAsync<MintAnswer>();
        return body!.Token;
    }

    /// <summary>
    /// Waits (at most <paramref name="patience"/>, 60 s by default) until every click this host answered 302 is in
    /// clicks.raw. A click whose acknowledgement took longer than Ingest:Spool:HedgeAfter was answered once it was in
    /// the spool, and reaches the broker after its answer: it is there once the spool is empty (its produce acknowledged,
    /// or its spooled copy forwarded). A host without the ingest role has nothing to wait for.
    /// </summary>
    public async Task ClicksOnBrokerAsync(TimeSpan? patience = null)
    {
        var spool = App.Services.GetService<ClickSpool>();
        if (spool is null)
        {
            return;
        }

        var deadline = DateTime.UtcNow + (patience ?? TimeSpan.FromSeconds(60));
        while (spool.PendingBytes > 0)
        {
            if (DateTime.UtcNow >= deadline)
            {
                throw new TimeoutException($"the spool still holds {spool.PendingBytes} bytes of clicks not yet on the broker");
            }

            await Task.Delay(100);
        }
    }

    /// <summary>Every click in clicks.raw, read once every click this host answered is there (<see cref="ClicksOnBrokerAsync"/>).</summary>
    public async Task<List<ConsumeResult<string, ClickEvent>>> ReadClicksAsync(TimeSpan? patience = null)
    {
        await ClicksOnBrokerAsync(patience);
        return TopicReader.ReadClicks(Broker);
    }

    /// <summary>GET with a bearer key.</summary>
    public async Task<HttpResponseMessage> GetAsync(string path, string apiKey)
    {
        using var request = new HttpRequestMessage(HttpMethod.Get, path);
        request.Headers.Authorization = new AuthenticationHeaderValue("Bearer", apiKey);
        return await Http.SendAsync(request);
    }

    public async ValueTask DisposeAsync()
    {
        Http.Dispose();
        await App.StopAsync();
        await App.DisposeAsync();
        await Broker.DisposeAsync();
        await Database.DisposeAsync();
        try
        {
            Directory.Delete(_stateDirectory, recursive: true);
        }
        catch (DirectoryNotFoundException)
        {
        }
    }

    private sealed record MintAnswer(string ImpressionId, string Token, string ClickUrl);
}
