using KafkaClicks.Contracts;
using static KafkaClicks.IntegrationTests.Infrastructure.RawClicks;

namespace KafkaClicks.IntegrationTests.Reconcile;

/// <summary>A recount of more records than it may hold impressions in memory goes through group files: same counts.</summary>
[Trait("Category", "Billing")]
[Trait("Storage", "none")]
public class ReconcileSpillTests
{
    private static readonly DateTime T0 = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour).AddHours(-3);

    [Fact]
    public async Task A_recount_spilling_to_group_files_counts_every_impression_once_as_one_set_in_memory_does()
    {
        await using var broker = await BrokerAsync(partitions: 8);
        var random = new Random(7);
        var clicks = new List<ClickEvent>();
        var firsts = new List<ClickEvent>();
        for (var i = 0; i < 3_000; i++)
        {
            var impression = Guid.NewGuid().ToString("N");
            var adId = 1 + random.Next(7);
            var salt = adId == 5 ? ClickPartitioning.SaltFor(impression, 4) : 0;
            // From 4 minutes before the range to 2 minutes after it (10 minutes long).
            var first = Click(adId, T0.AddSeconds(-240 + random.Next(960)), salt, impression);
            firsts.Add(first);
            clicks.Add(first);
        }

        // A third clicked again up to 20 minutes later: across the range's start, across minutes, past its end.
        foreach (var first in firsts.Where((_, i) => i % 3 == 0))
        {
            clicks.Add(Click(first.AdId, first.ClickedAt.AddSeconds(1 + random.Next(1_200)), first.Salt, first.ImpressionId));
        }

        Produce(broker, 8, clicks.OrderBy(c => c.ClickedAt));

        var inMemory = Counter(broker, TimeSpan.FromMinutes(5), readers: 3).Count(T0, T0.AddMinutes(10), null, null, default, toLogEnd: true);
        var spilled = Counter(broker, TimeSpan.FromMinutes(5), readers: 3, impressionsInMemory: 100).Count(T0, T0.AddMinutes(10), null, null, default, toLogEnd: true);

        var counted = firsts.Where(c => c.ClickedAt >= T0 && c.ClickedAt < T0.AddMinutes(10)).ToList();
        Assert.Equal(clicks.Count, spilled.EventsRead);
        Assert.Equal(clicks.Count, inMemory.EventsRead);
        Assert.Equal(counted.Count, spilled.Clicks);
        Assert.Equal(ReconcileTests.Truth(counted).OrderBy(w => w.Key), spilled.Windows.OrderBy(w => w.Key));
        Assert.Equal(inMemory.Windows.OrderBy(w => w.Key), spilled.Windows.OrderBy(w => w.Key));
    }
}
