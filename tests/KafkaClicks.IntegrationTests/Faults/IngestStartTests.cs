using System.Net;
using KafkaClicks.IntegrationTests.Infrastructure;

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
        await using var broker = await ProcessBroker.StartAsync(new Dictionary<string, string> { ["KAFKACLICKS_Kafka__ClicksRawPartitions"] = "8" });
        var setup = IngestProcessSetup.Create(broker, db);
        setup.Environment["KAFKACLICKS_Ingest__Spool__ForwardInterval"] = "00:00:00.500";
        broker.SetReachable(false);
        KafkaClicksProcess ingest;
        try
        {
            ingest = KafkaClicksProcess.Start("ingest", setup.Environment, "run", "--roles", "ingest");
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
                using var http = setup.Client();
                for (var i = 0; i < 20; i++)
                {
                    var minted = setup.Tokens.Mint(5);
                    using var response = await http.GetAsync(new Uri($"/c/{minted.Token}", UriKind.Relative));
                    Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
                    Assert.Equal(ProductHost.AdUrl(5), response.Headers.Location?.ToString());
                    clicked.Add(minted.ImpressionId);
                }

                Assert.NotEmpty(Directory.EnumerateFiles(setup.Spool));
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
                try
                {
                    inLog = TopicReader.ReadClicks(broker.BootstrapServers, broker.Names.ClicksRaw).Select(r => r.Message.Key).ToHashSet();
                }
                catch (Confluent.Kafka.KafkaException)
                {
                    // The broker process was just resumed and does not answer metadata yet: read again.
                    inLog = [];
                }
            }
            while (!clicked.All(inLog.Contains) && DateTime.UtcNow < deadline);

            Assert.True(clicked.All(inLog.Contains),
                $"{clicked.Count(id => !inLog.Contains(id))} of {clicked.Count} clicks answered 302 are not in clicks.raw\n{ingest.Output()}\n{broker.Output()}");
        }
        finally
        {
            await ingest.DisposeAsync();
            setup.DeleteSpool();
        }
    }
}
