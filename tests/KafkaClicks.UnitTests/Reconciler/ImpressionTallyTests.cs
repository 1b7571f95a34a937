using KafkaClicks.Reconciler;

namespace KafkaClicks.UnitTests.Reconciler;

public sealed class ImpressionTallyTests
{
    private static readonly DateTime From = new(2026, 11, 29, 10, 0, 0, DateTimeKind.Utc);
    private static readonly DateTime To = From.AddMinutes(30);
    private const int Partitions = 12;
    private const int Readers = 3;

    [Theory]
    [InlineData(null, 1_000)]
    [InlineData(null, 150)]
    [InlineData(7L, 300)]
    [InlineData(null, 1_000_000)]
    public void Counts_like_one_set_over_the_whole_read_while_holding_at_most_the_impressions_allowed(long? adId, int impressionsInMemory)
    {
        var log = RandomLog(seed: 20, clicks: 40_000);
        var expected = ReferenceCount(log, adId);

        using var tally = new ImpressionTally(From, To, adId, log.Sum(p => p.Count), impressionsInMemory, Path.GetTempPath());
        Feed(tally, log);
        var result = Collect(tally);
        Assert.Equal(impressionsInMemory < 40_000, tally.Spills);
        Assert.InRange(tally.PeakImpressionsHeld, 1, impressionsInMemory);
        Assert.Equal(expected.Windows.OrderBy(w => w.Key), result.OrderBy(w => w.Key));
        Assert.Equal(expected.Clicks, tally.Clicks);
    }

    [Fact]
    public void A_spilling_count_hands_the_windows_over_by_groups_of_ads_holding_one_group_at_a_time()
    {
        // 20,000 ads clicked a few times each: nearly every click counted is a window of its own, the case where holding
        // every window of the range costs as much as holding every impression.
        var log = RandomLog(seed: 21, clicks: 40_000, ads: 20_000);
        var expected = ReferenceCount(log, null);

        using var tally = new ImpressionTally(From, To, null, log.Sum(p => p.Count), 4_000, Path.GetTempPath());
        Feed(tally, log);
        var groups = new List<int>();
        var windows = new Dictionary<(long AdId, DateTime Minute, int Salt), long>();
        foreach (var (group, groupWindows) in tally.CountByAdGroup(CancellationToken.None))
        {
            groups.Add(group);
            Assert.All(groupWindows.Keys, key => Assert.Equal(group, ImpressionTally.AdGroupOf(key.AdId, tally.AdGroups)));
            foreach (var (key, clicks) in groupWindows)
            {
                windows.Add(key, clicks);
            }
        }

        Assert.Equal(10, tally.AdGroups);
        Assert.Equal(Enumerable.Range(0, 10), groups);
        Assert.Equal(expected.Windows.OrderBy(w => w.Key), windows.OrderBy(w => w.Key));
        Assert.Equal(expected.Clicks, tally.Clicks);
        Assert.InRange(expected.Windows.Count, expected.Clicks * 9 / 10, expected.Clicks);
        // One group's windows at a time: about a tenth of them (hashing leaves groups a little uneven).
        Assert.InRange(tally.PeakWindowsHeld, 1, expected.Windows.Count / 5);
    }

    [Fact]
    public void An_impression_clicked_before_the_range_is_not_counted_again_in_it_however_many_files()
    {
        var impression = new UInt128(42, 42);
        var before = new RawClick(1, 0, Ms(From.AddMinutes(-3)), impression);
        var repeat = new RawClick(1, 0, Ms(From.AddMinutes(12)), impression);
        var other = new RawClick(1, 0, Ms(From.AddMinutes(12)), new UInt128(7, 7));
        var filler = Enumerable.Range(0, 5_000).Select(i => new RawClick(2, 0, Ms(To.AddMinutes(1)), new UInt128((ulong)i, 1))).ToList();

        using var tally = new ImpressionTally(From, To, null, 5_003, 100, Path.GetTempPath());
        var writer = tally.CreateWriter();
        writer.Add([before, .. filler, repeat, other]);
        writer.Flush();
        var result = Collect(tally);
        Assert.True(tally.Spills);
        Assert.Equal(1, tally.Clicks);
        Assert.Equal(1, result[(1, From.AddMinutes(12), 0)]);
    }

    /// <summary>
    /// Clicks per partition in log order: impressions land on the partition of their hash (as ingest places every click
    /// of an impression on one partition), a quarter of them clicked again up to an hour later, event times from 20
    /// minutes before the range to 20 minutes after it, and written up to 2 minutes out of time order.
    /// </summary>
    private static List<List<RawClick>> RandomLog(int seed, int clicks, int ads = 10)
    {
        var random = new Random(seed);
        var events = new List<(long WrittenMs, RawClick Click)>();
        var span = (long)(To - From).TotalMilliseconds + 40 * 60_000;
        while (events.Count < clicks)
        {
            var impression = new UInt128((ulong)random.NextInt64(), (ulong)random.NextInt64());
            var adId = 1 + random.Next(ads);
            var salt = adId == 7 ? random.Next(4) : 0;
            var at = Ms(From.AddMinutes(-20)) + random.NextInt64(span);
            var repeats = random.NextDouble() < 0.25 ? 1 + random.Next(3) : 0;
            for (var i = 0; i <= repeats; i++)
            {
                var clickedAt = at + (i == 0 ? 0 : random.NextInt64(3_600_000));
                events.Add((clickedAt + random.Next(120_000), new RawClick(adId, salt, clickedAt, impression)));
            }
        }

        var log = Enumerable.Range(0, Partitions).Select(_ => new List<RawClick>()).ToList();
        foreach (var (_, click) in events.OrderBy(e => e.WrittenMs))
        {
            log[(int)(click.Impression % Partitions)].Add(click);
        }

        return log;
    }

    /// <summary>Every group's windows, gathered (each ad's windows come in one group only).</summary>
    private static Dictionary<(long AdId, DateTime Minute, int Salt), long> Collect(ImpressionTally tally)
    {
        var windows = new Dictionary<(long AdId, DateTime Minute, int Salt), long>();
        foreach (var (_, groupWindows) in tally.CountByAdGroup(CancellationToken.None))
        {
            foreach (var (key, clicks) in groupWindows)
            {
                windows.Add(key, clicks);
            }
        }

        return windows;
    }

    /// <summary>Each reader takes every third partition and reads them interleaved in batches, as consumers do.</summary>
    private static void Feed(ImpressionTally tally, List<List<RawClick>> log)
    {
        var readers = Enumerable.Range(0, Readers).Select(r => (Writer: tally.CreateWriter(),
            Partitions: log.Where((_, p) => p % Readers == r).Select(p => new Queue<RawClick>(p)).ToList())).ToList();
        var random = new Random(3);
        while (readers.Any(r => r.Partitions.Any(p => p.Count > 0)))
        {
            foreach (var (writer, partitions) in readers)
            {
                var batch = new List<RawClick>();
                foreach (var partition in partitions)
                {
                    for (var n = random.Next(200); n > 0 && partition.Count > 0; n--)
                    {
                        batch.Add(partition.Dequeue());
                    }
                }

                writer.Add(batch);
            }
        }

        foreach (var (writer, _) in readers)
        {
            writer.Flush();
        }
    }

    /// <summary>The plain count: one set of every impression seen, partition by partition in log order.</summary>
    private static RawCounts ReferenceCount(List<List<RawClick>> log, long? adId)
    {
        var counts = new RawCounts();
        var seen = new HashSet<UInt128>();
        foreach (var click in log.SelectMany(p => p))
        {
            if ((adId is { } only && click.AdId != only) || click.ClickedAtMs >= Ms(To) || !seen.Add(click.Impression) || click.ClickedAtMs < Ms(From))
            {
                continue;
            }

            var minute = DateTime.UnixEpoch.AddMilliseconds(click.ClickedAtMs - click.ClickedAtMs % 60_000);
            counts.Windows[(click.AdId, minute, click.Salt)] = counts.Windows.GetValueOrDefault((click.AdId, minute, click.Salt)) + 1;
            counts.Clicks++;
        }

        return counts;
    }

    private static long Ms(DateTime at) => (long)(at - DateTime.UnixEpoch).TotalMilliseconds;
}
