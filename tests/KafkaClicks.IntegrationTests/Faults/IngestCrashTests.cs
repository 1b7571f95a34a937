using System.Collections.Concurrent;
using System.Net;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// The ingest process SIGKILLed under load: every click that got a 302 is in clicks.raw (from the broker's ack, or from
/// the spool once the process is back); clicks that got no answer were never acknowledged to the user.
/// </summary>
public class IngestCrashTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const int AcknowledgedBeforeKill = 200;

    [Fact]
    public async Task Every_click_that_got_a_302_before_the_kill_is_in_the_raw_log()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.ExecuteAsync("INSERT INTO advertisers (advertiser_id, name) VALUES (1, 'crash')");
        for (long adId = 1; adId <= 20; adId++)
        {
            await db.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES ($1, 1, $2)", adId, ProductHost.AdUrl(adId));
        }

        await using var broker = await ProcessBroker.StartAsync(new Dictionary<string, string> { ["KAFKACLICKS_Kafka__ClicksRawPartitions"] = "8" });
        var setup = IngestProcessSetup.Create(broker, db);
        var (environment, tokens) = (setup.Environment, setup.Tokens);

        var ingest = KafkaClicksProcess.Start("ingest #1", environment, "run", "--roles", "ingest");
        try
        {
            await ingest.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(60));
            var acknowledged = new ConcurrentBag<string>();
            var unanswered = 0;
            using var http = setup.Client();
            using var stop = new CancellationTokenSource();
            var workers = Enumerable.Range(0, 8).Select(worker => Task.Run(async () =>
            {
                var random = new Random(worker);
                while (!stop.IsCancellationRequested)
                {
                    var minted = tokens.Mint(1 + random.Next(20));
                    try
                    {
                        using var response = await http.GetAsync(new Uri($"/c/{minted.Token}", UriKind.Relative));
                        if (response.StatusCode == HttpStatusCode.Redirect)
                        {
                            acknowledged.Add(minted.ImpressionId);
                        }
                    }
                    catch (Exception e) when (e is HttpRequestException or TaskCanceledException)
                    {
                        Interlocked.Increment(ref unanswered);
                    }
                }
            })).ToList();

            // Killed under load, once a good number of clicks were acknowledged (on a slow, shared host that takes
            // longer than on an idle one, so it waits for the count, not for a fixed time).
            var loaded = DateTime.UtcNow.AddSeconds(60);
            while (acknowledged.Count <= AcknowledgedBeforeKill && DateTime.UtcNow < loaded)
            {
                await Task.Delay(100);
            }

            ingest.Kill();
            await Task.Delay(TimeSpan.FromSeconds(1));
            stop.Cancel();
            await Task.WhenAll(workers);
            Assert.True(acknowledged.Count > AcknowledgedBeforeKill, $"only {acknowledged.Count} clicks were acknowledged before the kill");
            Assert.True(unanswered > 0, "the kill must have cut requests off");

            // Back up with the same spool: anything spooled before the kill is forwarded.
            await ingest.DisposeAsync();
            ingest = KafkaClicksProcess.Start("ingest #2", environment, "run", "--roles", "ingest");
            await ingest.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(60));
            HashSet<string> inLog = [];
            var deadline = DateTime.UtcNow.AddSeconds(30);
            do
            {
                inLog = TopicReader.ReadClicks(broker.BootstrapServers, broker.Names.ClicksRaw).Select(r => r.Message.Key).ToHashSet();
                if (acknowledged.All(inLog.Contains))
                {
                    break;
                }

                await Task.Delay(500);
            }
            while (DateTime.UtcNow < deadline);

            var missing = acknowledged.Where(id => !inLog.Contains(id)).ToList();
            Assert.True(missing.Count == 0, $"{missing.Count} of {acknowledged.Count} acknowledged clicks are not in clicks.raw");
        }
        finally
        {
            await ingest.DisposeAsync();
            setup.DeleteSpool();
        }
    }
}
