using KafkaClicks.Aggregator;
using KafkaClicks.UnitTests.Infrastructure;

namespace KafkaClicks.UnitTests.Aggregator;

public sealed class StreamRestartsTests
{
    [Fact]
    public void A_failing_stream_is_restarted_with_growing_pauses_then_the_process_stops()
    {
        var clock = new ManualClock(DateTimeOffset.Parse("2026-12-06T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var restarts = new StreamRestarts(clock);

        Assert.Equal(TimeSpan.FromSeconds(1), restarts.Next());
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(TimeSpan.FromSeconds(5), restarts.Next());
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Equal(TimeSpan.FromSeconds(15), restarts.Next());
        clock.Advance(TimeSpan.FromMinutes(1));
        Assert.Null(restarts.Next());
    }

    [Fact]
    public void Failures_further_apart_than_the_window_are_each_restarted()
    {
        var clock = new ManualClock(DateTimeOffset.Parse("2026-12-06T10:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var restarts = new StreamRestarts(clock);
        for (var i = 0; i < 10; i++)
        {
            Assert.Equal(TimeSpan.FromSeconds(1), restarts.Next());
            clock.Advance(StreamRestarts.Window + TimeSpan.FromSeconds(1));
        }
    }
}
