using KafkaClicks.Contracts;
using KafkaClicks.UnitTests.Infrastructure;
using static KafkaClicks.UnitTests.Infrastructure.AggregatorHarness;

namespace KafkaClicks.UnitTests.Topology;

/// <summary>
/// The progress markers an aggregator task sends to every clicks.minute partition: completeThrough is built from them,
/// so a marker must never come before a final it covers, nor claim a window that is still open.
/// </summary>
public sealed class FinalProgressTests
{
    private static readonly DateTime W0 = Noon;
    private static readonly DateTime W1 = Noon.AddMinutes(1);

    private static DateTime At(int minute, int second) => Noon.AddMinutes(minute).AddSeconds(second);

    [Fact]
    [Trait("Category", "Billing")]
    public void A_marker_goes_to_every_minute_partition_behind_the_finals_it_covers()
    {
        using var h = new AggregatorHarness(minutePartitions: 3);
        h.Click("imp-1", 7, At(0, 10));
        h.Click("imp-2", 8, At(0, 20));
        Assert.DoesNotContain(h.ReadMinuteTopic(), r => r.Progress is not null);

        // 12:01:31 moves stream time past the 12:00 window's end plus grace (30 s): its finals, then at the punctuation
        // one marker per clicks.minute partition saying every window through 12:01 is final.
        h.Click("imp-3", 7, At(1, 31));
        h.Tick();
        var topic = h.ReadMinuteTopic();
        var lastFinal = topic.FindLastIndex(r => r.Count is { Final: true });
        var firstMarker = topic.FindIndex(r => r.Progress is not null);
        Assert.True(lastFinal >= 0 && firstMarker > lastFinal, "every final of the 12:00 window precedes the first marker");
        Assert.Equal([(7L, true), (8L, true)], topic.Where(r => r.Count is { Final: true }).Select(r => (r.Count!.AdId, r.Count.Final)).Order());
        var markers = topic.Where(r => r.Progress is not null).Select(r => r.Progress!).ToList();
        Assert.Equal([0, 1, 2], markers.Select(m => m.Partition));
        Assert.All(markers, m =>
        {
            Assert.Equal((0, 1, 3, W1), (m.Task, m.Tasks, m.Partitions, m.FinalThrough.ToUniversalTime()));
        });
    }

    [Fact]
    [Trait("Category", "Billing")]
    public void A_marker_never_claims_a_window_still_open_and_is_sent_again_only_when_more_windows_closed()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-1", 7, At(0, 10));
        h.Click("imp-2", 7, At(1, 29));

        // Stream time 12:01:29: the 12:00 window closes at 12:01:30, so no window is final yet, and a marker may only
        // say "through 12:00" (the windows ending at or before it).
        h.Tick();
        var first = h.ReadMinuteTopic();
        Assert.DoesNotContain(first, r => r.Count is { Final: true });
        Assert.Equal(W0, Assert.Single(first, r => r.Progress is not null).Progress!.FinalThrough.ToUniversalTime());

        // A click that closes nothing new sends no marker.
        h.Click("imp-3", 7, At(1, 29));
        h.Tick();
        Assert.DoesNotContain(h.ReadMinuteTopic(), r => r.Progress is not null);

        // 12:01:30 closes the 12:00 window: its final, then "through 12:01".
        h.Click("imp-4", 8, At(1, 30));
        h.Tick();
        var second = h.ReadMinuteTopic();
        Assert.Equal(1L, Assert.Single(second, r => r.Count is { Final: true }).Count!.Clicks);
        Assert.Equal(W1, Assert.Single(second, r => r.Progress is not null).Progress!.FinalThrough.ToUniversalTime());
    }

    [Fact]
    [Trait("Category", "Billing")]
    public void A_task_that_never_had_a_click_says_so_only_once_restored_and_after_a_whole_interval_without_one()
    {
        var started = DateTime.UtcNow; // the stream's wall clock starts at this host's clock when the harness starts
        using var h = new AggregatorHarness();

        // The first punctuation of the restored (RUNNING) task finds nothing to rebuild and starts counting the quiet
        // interval; it says nothing before the interval has passed. (No marker at all would mean the task's state could
        // not be read from Streamiz, which StreamTaskState does by reflection: then no task that is not sure its store
        // is restored may rebuild or report, and this test fails.)
        h.Tick();
        Assert.Empty(h.ReadMinuteTopic());
        h.Tick();
        var after = DateTime.UtcNow;
        var marker = Assert.Single(h.ReadMinuteTopic()).Progress!;

        // Through the windows that ended a grace period before the quiet interval (one emit interval) began, on the
        // stream's wall clock, which the two ticks moved two emit intervals ahead of this host's.
        var ahead = 2 * h.Options.EmitInterval;
        var back = h.Options.EmitInterval + h.Options.Grace;
        Assert.InRange(marker.FinalThrough.ToUniversalTime(), Minute(started + ahead - back), Minute(after + ahead - back));
    }

    private static DateTime Minute(DateTime value) => new(value.Ticks - (value.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc);
}
