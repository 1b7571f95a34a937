using System.Globalization;
using System.Net;
using System.Security.Cryptography;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Aggregator;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Options;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// An ingest instance (re)started while its broker does not answer (restarted by its supervisor during an outage,
/// or scaled out then) must start, answer every click from the spool, and forward the spool once the broker is back.
/// </summary>
[Trait("Category", "Billing")]
public sealed class IngestStartTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task An_ingest_instance_started_while_the_broker_is_down_spools_its_clicks_and_forwards_them()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.ExecuteAsync("INSERT INTO advertisers (advertiser_id, name) VALUES (1, 'outage')");
        await db.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES (5, 1, $1)", ProductHost.AdUrl(5));
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var port = FreePorts.Next();
        var spool = Path.Combine(Path.GetTempPath(), "kafkaclicks-ingest-start-" + Guid.NewGuid().ToString("N"));
        await using var broker = await ProcessBroker.StartAsync(new Dictionary<string, string> { ["KAFKACLICKS_Kafka__ClicksRawPartitions"] = "8" });
        var environment = new Dictionary<string, string>(broker.Environment)
        {
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_ConnectionStrings__Redis"] = RedisServer.ConnectionString,
            ["KAFKACLICKS_Ingest__Tokens__ActiveKeyId"] = "start",
            ["KAFKACLICKS_Ingest__Tokens__Keys__start"] = key,
            ["KAFKACLICKS_Ingest__Spool__Directory"] = spool,
            ["KAFKACLICKS_Ingest__Spool__ForwardInterval"] = "00:00:00.500",
            ["KAFKACLICKS_Urls"] = $"http://127.0.0.1:{port}",
        };
        var tokens = new ImpressionTokens(Options.Create(new IngestOptions
        {
            Tokens = new TokenOptions { ActiveKeyId = "start", Keys = new() { ["start"] = key } },
        }), TimeProvider.System);

        broker.SetReachable(false);
        KafkaClicksProcess ingest;
        try
        {
            ingest = KafkaClicksProcess.Start("ingest", environment, "run", "--roles", "ingest");
        }
        catch
        {
            broker.SetReachable(true);
            throw;
        }

        try
        {
            var clicked = new List<string>();
            try
            {
                await ingest.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(120));
                using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false })
                {
                    BaseAddress = new Uri($"http://127.0.0.1:{port}"),
                    Timeout = TimeSpan.FromSeconds(10),
                };
                for (var i = 0; i < 20; i++)
                {
                    var minted = tokens.Mint(5);
                    using var response = await http.GetAsync(new Uri($"/c/{minted.Token}", UriKind.Relative));
                    Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
                    Assert.Equal(ProductHost.AdUrl(5), response.Headers.Location?.ToString());
                    clicked.Add(minted.ImpressionId);
                }

                Assert.NotEmpty(Directory.EnumerateFiles(spool));
            }
            finally
            {
                broker.SetReachable(true);
            }

            HashSet<string> inLog;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            do
            {
                await Task.Delay(500);
                ingest.EnsureRunning();
                inLog = TopicReader.ReadClicks(broker.BootstrapServers, broker.Names.ClicksRaw).Select(r => r.Message.Key).ToHashSet();
            }
            while (!clicked.All(inLog.Contains) && DateTime.UtcNow < deadline);

            Assert.True(clicked.All(inLog.Contains),
                $"{clicked.Count(id => !inLog.Contains(id))} of {clicked.Count} clicks answered 302 are not in clicks.raw\n{ingest.Output()}");
        }
        finally
        {
            await ingest.DisposeAsync();
            if (Directory.Exists(spool))
            {
                Directory.Delete(spool, recursive: true);
            }
        }
    }
}
