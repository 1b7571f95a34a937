using System.Net;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// Clicks that reach clicks.raw after their window's grace, as a spool drained after a long broker outage delivers
/// them: the stream does not count them (they go to clicks.late), and a reconciliation run over their range, as the
/// scheduled run that covers their hour makes it, puts them in the database. Late is not lost.
/// </summary>
public class LateClickTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly long[] Ads = [91, 92];

    [Fact]
    public async Task Clicks_later_than_the_grace_go_to_clicks_late_and_a_reconciliation_run_over_their_range_counts_them()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.All, new Dictionary<string, string?>
        {
            ["Aggregator:Grace"] = "00:00:30", // the product's default
        });
        await host.AddAdvertiserAsync(1, Ads);

        // Live clicks move each ad's partition's stream time to now, and reach the database through the stream.
        var live = Ads.ToDictionary(ad => ad, _ => 0L);
        for (var i = 0; i < 30; i++)
        {
            var adId = Ads[i % Ads.Length];
            using var response = await host.Http.GetAsync(new Uri($"/c/{await host.MintAsync(adId)}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            live[adId]++;
        }

        await WaitForStoredAsync(host, live);

        // Clicks made three minutes ago, delivered now: their windows closed (end + 30 s grace) at least 90 s ago.
        var now = DateTime.UtcNow;
        var clickedAt = now.AddMinutes(-3);
        var lateMinute = clickedAt.AddTicks(-(clickedAt.Ticks % TimeSpan.TicksPerMinute));
        var producer = host.App.Services.GetRequiredService<ClickEventProducer>();
        var late = new Dictionary<long, long> { [Ads[0]] = 7, [Ads[1]] = 5 };
        var lateImpressions = new HashSet<string>();
        foreach (var (adId, count) in late)
        {
            for (var i = 0; i < count; i++)
            {
                var impression = $"late-{adId}-{i}-{Guid.NewGuid():N}";
                lateImpressions.Add(impression);
                await producer.ProduceAsync(new ClickEvent
                {
                    ImpressionId = impression,
                    AdId = adId,
                    AdvertiserId = 1,
                    Salt = 0,
                    ClickedAt = clickedAt,
                    ImpressionAt = clickedAt.AddSeconds(-5),
                    DedupeChecked = true,
                    IngestInstance = "late-click-test",
                }, default);
            }
        }

        // The stream forwards every one of them to clicks.late and does not count them.
        var deadline = DateTime.UtcNow.AddSeconds(30);
        HashSet<string> onLate;
        do
        {
            await Task.Delay(500);
            onLate = TopicReader.ReadClicks(host.Broker.BootstrapServers, Topics.ClicksLate).Select(r => r.Message.Value.ImpressionId).ToHashSet();
        }
        while (!onLate.SetEquals(lateImpressions) && DateTime.UtcNow < deadline);
        Assert.Equal(lateImpressions.Order(), onLate.Order());
        Assert.Equal(live.OrderBy(l => l.Key), (await StoredAsync(host)).OrderBy(s => s.Key));

        // A run over their range, through the scheduler's own entry point, corrects exactly the two late windows;
        // a second run finds nothing more.
        var scheduler = host.App.Services.GetRequiredService<ReconciliationScheduler>();
        var from = lateMinute.AddMinutes(-5);
        var to = now.AddTicks(-(now.Ticks % TimeSpan.TicksPerMinute)).AddMinutes(1);
        var report = await scheduler.RunAsync(from, to, default);

        Assert.Equal(2, report.WindowsCorrected);
        Assert.Equal(live.Values.Sum() + late.Values.Sum(), report.RawClicks);
        Assert.Equal(Ads.ToDictionary(ad => ad, ad => live[ad] + late[ad]).OrderBy(e => e.Key), (await StoredAsync(host)).OrderBy(s => s.Key));
        foreach (var (adId, count) in late)
        {
            Assert.Equal(count, await host.Database.ScalarAsync<long>(
                "SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = $1 AND minute = $2", adId, lateMinute));
        }

        Assert.Equal(0, (await scheduler.RunAsync(from, to, default)).WindowsCorrected);
    }

    private static async Task WaitForStoredAsync(ProductHost host, Dictionary<long, long> expected)
    {
        var deadline = DateTime.UtcNow.AddSeconds(60);
        while (true)
        {
            var stored = await StoredAsync(host);
            if (expected.All(e => stored.GetValueOrDefault(e.Key) == e.Value))
            {
                return;
            }

            Assert.True(DateTime.UtcNow < deadline, "the live clicks did not reach the database within 60 s");
            await Task.Delay(500);
        }
    }

    private static async Task<Dictionary<long, long>> StoredAsync(ProductHost host)
    {
        var stored = new Dictionary<long, long>();
        await using var command = host.Database.DataSource.CreateCommand("SELECT ad_id, sum(clicks)::bigint FROM ad_clicks_minute GROUP BY ad_id");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            stored[reader.GetInt64(0)] = reader.GetInt64(1);
        }

        return stored;
    }
}
