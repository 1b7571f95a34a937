using System.Net;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// Clicks that reach clicks.raw after their window's grace, as a spool drained after a broker outage delivers them:
/// the stream does not count them (they go to clicks.late). Those that reach the log in time for their hour's
/// scheduled run are counted by it; those that arrive later are recounted by the reconciler from clicks.late. Late is
/// not lost.
/// </summary>
public class LateClickTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly long[] Ads = [91, 92];

    [Fact]
    public async Task Clicks_later_than_the_grace_go_to_clicks_late_and_a_reconciliation_run_over_their_range_counts_them()
    {
        var (host, live) = await StartWithLiveClicksAsync(new Dictionary<string, string?>());
        await using var _ = host;

        // Clicks made three minutes ago, delivered now: their windows closed (end + 30 s grace) at least 90 s ago.
        // Their hour's scheduled run will read them (they reached the log within Reconciler:Lateness of the hour).
        var now = DateTime.UtcNow;
        var clickedAt = now.AddMinutes(-3);
        var lateMinute = Minute(clickedAt);
        var late = new Dictionary<long, long> { [Ads[0]] = 7, [Ads[1]] = 5 };
        await DeliverLateAsync(host, clickedAt, late);
        Assert.Equal(live.OrderBy(l => l.Key), (await StoredAsync(host)).OrderBy(s => s.Key));
        Assert.Null(LateClickReconciler.HourToRecount(clickedAt, now, TimeSpan.FromMinutes(5)));

        // A run over their range, through the scheduler's own entry point, corrects exactly the two late windows;
        // a second run finds nothing more. The range ends with the late minute: the live clicks' minute is still open,
        // and a run may only correct closed windows.
        var scheduler = host.App.Services.GetRequiredService<ReconciliationScheduler>();
        var from = lateMinute.AddMinutes(-5);
        var to = lateMinute.AddMinutes(1);
        var report = await scheduler.RunAsync(from, to, default);

        Assert.Equal(2, report.WindowsCorrected);
        Assert.Equal(late.Values.Sum(), report.RawClicks);
        await AssertStoredAsync(host, live, late, lateMinute);
        Assert.Equal(0, (await scheduler.RunAsync(from, to, default)).WindowsCorrected);
    }

    /// <summary>
    /// Clicks made two hours ago that reach the log only now, as from a spool drained after a long outage: their
    /// hour's scheduled run has passed and read the log only up to its hour's end plus Reconciler:Lateness, so nothing
    /// scheduled would count them. The reconciler follows clicks.late and recounts their hour, reading the log up to them.
    /// </summary>
    [Fact]
    public async Task Clicks_that_reach_the_log_after_their_hours_scheduled_run_are_recounted_from_clicks_late()
    {
        var (host, live) = await StartWithLiveClicksAsync(new Dictionary<string, string?> { ["Reconciler:LateClickDelay"] = "00:00:01" });
        await using var _ = host;

        var now = DateTime.UtcNow;
        var clickedAt = now.AddHours(-2);
        Assert.NotNull(LateClickReconciler.HourToRecount(clickedAt, now, TimeSpan.FromMinutes(5)));
        var late = new Dictionary<long, long> { [Ads[0]] = 4, [Ads[1]] = 6 };
        await DeliverLateAsync(host, clickedAt, late);

        var expected = Ads.ToDictionary(ad => ad, ad => live[ad] + late[ad]);
        await WaitForStoredAsync(host, expected);
        await AssertStoredAsync(host, live, late, Minute(clickedAt));
    }

    private static DateTime Minute(DateTime at) => at.AddTicks(-(at.Ticks % TimeSpan.TicksPerMinute));

    /// <summary>
    /// Every role, the product's 30 s grace, and 30 live clicks counted by the stream: they move each ad's partition's
    /// stream time to now, so older clicks are late.
    /// </summary>
    private async Task<(ProductHost Host, Dictionary<long, long> Live)> StartWithLiveClicksAsync(Dictionary<string, string?> settings)
    {
        settings["Aggregator:Grace"] = "00:00:30";
        var host = await ProductHost.StartAsync(postgres, Role.All, settings);
        await host.AddAdvertiserAsync(1, Ads);
        var live = Ads.ToDictionary(ad => ad, _ => 0L);
        for (var i = 0; i < 30; i++)
        {
            var adId = Ads[i % Ads.Length];
            using var response = await host.Http.GetAsync(new Uri($"/c/{await host.MintAsync(adId)}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
            live[adId]++;
        }

        await WaitForStoredAsync(host, live);
        return (host, live);
    }

    /// <summary>Produces late clicks through the ingest role's producer and waits until the stream forwarded all of them to clicks.late.</summary>
    private static async Task DeliverLateAsync(ProductHost host, DateTime clickedAt, Dictionary<long, long> late)
    {
        var producer = host.App.Services.GetRequiredService<ClickEventProducer>();
        var impressions = new HashSet<string>();
        foreach (var (adId, count) in late)
        {
            for (var i = 0; i < count; i++)
            {
                var impression = $"late-{adId}-{i}-{Guid.NewGuid():N}";
                impressions.Add(impression);
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

        var deadline = DateTime.UtcNow.AddSeconds(30);
        HashSet<string> onLate;
        do
        {
            await Task.Delay(500);
            onLate = TopicReader.ReadClicks(host.Broker.BootstrapServers, host.Broker.Names.ClicksLate).Select(r => r.Message.Value.ImpressionId).ToHashSet();
        }
        while (!onLate.SetEquals(impressions) && DateTime.UtcNow < deadline);
        Assert.Equal(impressions.Order(), onLate.Order());
    }

    /// <summary>The database holds the live and the late clicks, and each late window exactly its late clicks.</summary>
    private static async Task AssertStoredAsync(ProductHost host, Dictionary<long, long> live, Dictionary<long, long> late, DateTime lateMinute)
    {
        Assert.Equal(Ads.ToDictionary(ad => ad, ad => live[ad] + late[ad]).OrderBy(e => e.Key), (await StoredAsync(host)).OrderBy(s => s.Key));
        foreach (var (adId, count) in late)
        {
            Assert.Equal(count, await host.Database.ScalarAsync<long>(
                "SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute WHERE ad_id = $1 AND minute = $2", adId, lateMinute));
        }
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

            Assert.True(DateTime.UtcNow < deadline, $"the database did not reach {string.Join(", ", expected)} within 60 s");
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
