using KafkaClicks.Contracts;

namespace KafkaClicks.UnitTests.Contracts;

public sealed class TimeBucketsTests
{
    private static readonly DateTime T = new(2026, 3, 1, 13, 59, 59, 999, DateTimeKind.Utc);

    [Theory]
    [InlineData(0L, 0L)]
    [InlineData(59_999L, 0L)]
    [InlineData(60_000L, 60_000L)]
    [InlineData(-1L, -60_000L)] // before 1970: the minute that holds it, not the one after
    [InlineData(-60_000L, -60_000L)]
    [InlineData(-60_001L, -120_000L)]
    public void A_click_counts_in_the_minute_that_holds_it(long unixMs, long minuteStartMs) =>
        Assert.Equal(minuteStartMs, TimeBuckets.MinuteStartMs(unixMs));

    [Theory]
    [InlineData(599_999L, 600_000L, 0L)] // the aggregator's 10-minute impression buckets
    [InlineData(600_000L, 600_000L, 600_000L)]
    [InlineData(-1L, 600_000L, -600_000L)]
    public void A_time_falls_in_the_bucket_that_holds_it_whatever_the_bucket_length(long unixMs, long unitMs, long bucketStartMs) =>
        Assert.Equal(bucketStartMs, TimeBuckets.FloorMs(unixMs, unitMs));

    [Fact]
    public void Floors_take_the_bucket_that_holds_the_time_and_ceilings_keep_a_bucket_start()
    {
        Assert.Equal(new DateTime(2026, 3, 1, 13, 59, 0, DateTimeKind.Utc), TimeBuckets.MinuteOf(T));
        Assert.Equal(new DateTime(2026, 3, 1, 13, 0, 0, DateTimeKind.Utc), TimeBuckets.HourOf(T));
        Assert.Equal(new DateTime(2026, 3, 1, 14, 0, 0, DateTimeKind.Utc), TimeBuckets.CeilingMinute(T));
        Assert.Equal(new DateTime(2026, 3, 1, 14, 0, 0, DateTimeKind.Utc), TimeBuckets.CeilingHour(T));
        Assert.Equal(new DateTime(2026, 3, 2, 0, 0, 0, DateTimeKind.Utc), TimeBuckets.CeilingDay(T));

        var hour = new DateTime(2026, 3, 1, 14, 0, 0, DateTimeKind.Utc);
        Assert.Equal(hour, TimeBuckets.CeilingMinute(hour));
        Assert.Equal(hour, TimeBuckets.CeilingHour(hour));
        Assert.Equal(hour, TimeBuckets.HourOf(hour));
        Assert.Equal(DateTimeKind.Utc, TimeBuckets.HourOf(T).Kind);
        Assert.True(TimeBuckets.IsWholeMinute(hour));
        Assert.False(TimeBuckets.IsWholeMinute(T));
    }

    [Fact]
    public void The_minute_of_a_time_and_of_its_Unix_milliseconds_agree()
    {
        var ms = (long)(T - DateTime.UnixEpoch).TotalMilliseconds;
        Assert.Equal(TimeBuckets.MinuteOf(T), DateTime.UnixEpoch.AddMilliseconds(TimeBuckets.MinuteStartMs(ms)));
    }
}
