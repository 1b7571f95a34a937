using System.Globalization;
using KafkaClicks.Query;

namespace KafkaClicks.UnitTests.Query;

/// <summary>
/// Which table answers which part of a series (<see cref="ClickSeriesStore.Plan"/>, <see cref="ClickSeriesStore.RowUnit"/>):
/// an answer is never staler than the minutes, so the real-time tail and every dirty hour come from ad_clicks_minute,
/// clean hours from ad_clicks_hourly, and only whole clean UTC days of UTC day buckets from ad_clicks_daily.
/// </summary>
public class ClickSeriesPlanTests
{
    private static readonly TimeSpan Hour = TimeSpan.FromHours(1);
    private static readonly DateTimeOffset Now = At("2026-11-29T12:30:00Z");

    private static DateTimeOffset At(string instant) => DateTimeOffset.Parse(instant, CultureInfo.InvariantCulture);

    private static QueryRange Range(string from, string to, string granularity, string? tz = null)
    {
        var range = QueryRange.Parse(from, to, granularity, tz, Now, 10_080);
        Assert.Null(range.Problem);
        return range;
    }

    /// <summary>The plan for the range, checked to cover it exactly: in order, no gap, no overlap.</summary>
    private static IReadOnlyList<Segment> Plan(QueryRange range, DateTimeOffset tailStart, params DateTimeOffset[] dirtyHours)
    {
        var segments = ClickSeriesStore.Plan(range, ClickSeriesStore.RowUnit(range, range.BucketStarts()), tailStart, dirtyHours.ToHashSet());
        Assert.NotEmpty(segments);
        Assert.Equal(range.From, segments[0].From);
        Assert.Equal(range.To, segments[^1].To);
        for (var i = 1; i < segments.Count; i++)
        {
            Assert.Equal(segments[i - 1].To, segments[i].From);
        }

        Assert.All(segments, s => Assert.True(s.From < s.To));
        return segments;
    }

    private static Segment S(Source source, string from, string to) => new(source, At(from), At(to));

    [Theory]
    [InlineData("1m")]
    [InlineData("5m")]
    [InlineData("15m")]
    public void Buckets_under_an_hour_are_read_from_the_minutes_alone_even_for_clean_old_hours(string granularity)
    {
        var range = Range("2026-11-28T10:07:00Z", "2026-11-28T13:52:00Z", granularity);

        Assert.Equal(range.Bucket, ClickSeriesStore.RowUnit(range, range.BucketStarts()));
        Assert.Equal([new Segment(Source.Minute, range.From, range.To)], Plan(range, tailStart: Now));
    }

    [Fact]
    public void Clean_hours_before_the_tail_come_from_the_hourly_rollup()
    {
        var range = Range("2026-11-28T10:00:00Z", "2026-11-28T16:00:00Z", "1h");

        Assert.Equal([S(Source.Hourly, "2026-11-28T10:00:00Z", "2026-11-28T16:00:00Z")], Plan(range, tailStart: At("2026-11-29T12:00:00Z")));
    }

    [Fact]
    public void The_hour_that_starts_the_tail_and_every_later_one_come_from_the_minutes()
    {
        var range = Range("2026-11-29T08:00:00Z", "2026-11-29T13:00:00Z", "1h");

        Assert.Equal(
            [S(Source.Hourly, "2026-11-29T08:00:00Z", "2026-11-29T11:00:00Z"), S(Source.Minute, "2026-11-29T11:00:00Z", "2026-11-29T13:00:00Z")],
            Plan(range, tailStart: At("2026-11-29T11:00:00Z")));
    }

    [Fact]
    public void A_partial_hour_asked_for_is_widened_to_whole_hours_and_read_like_them()
    {
        // 10:20 to 12:10 by hour covers the hours 10, 11 and 12: the clean ones from the rollup, the tail's from the minutes.
        var range = Range("2026-11-29T10:20:00Z", "2026-11-29T12:10:00Z", "1h");
        Assert.Equal((At("2026-11-29T10:00:00Z"), At("2026-11-29T13:00:00Z")), (range.From, range.To));

        Assert.Equal(
            [S(Source.Hourly, "2026-11-29T10:00:00Z", "2026-11-29T12:00:00Z"), S(Source.Minute, "2026-11-29T12:00:00Z", "2026-11-29T13:00:00Z")],
            Plan(range, tailStart: At("2026-11-29T12:00:00Z")));
    }

    [Fact]
    public void A_dirty_hour_is_read_from_the_minutes_and_its_neighbours_from_the_rollup()
    {
        var range = Range("2026-11-28T08:00:00Z", "2026-11-28T12:00:00Z", "1h");

        Assert.Equal(
            [
                S(Source.Hourly, "2026-11-28T08:00:00Z", "2026-11-28T09:00:00Z"),
                S(Source.Minute, "2026-11-28T09:00:00Z", "2026-11-28T11:00:00Z"),
                S(Source.Hourly, "2026-11-28T11:00:00Z", "2026-11-28T12:00:00Z"),
            ],
            Plan(range, Now, At("2026-11-28T09:00:00Z"), At("2026-11-28T10:00:00Z")));
    }

    [Fact]
    public void Whole_clean_utc_days_come_from_the_daily_rollup()
    {
        var range = Range("2026-11-25T00:00:00Z", "2026-11-28T00:00:00Z", "1d");

        Assert.Equal(Hour, ClickSeriesStore.RowUnit(range, range.BucketStarts()));
        Assert.Equal([S(Source.Daily, "2026-11-25T00:00:00Z", "2026-11-28T00:00:00Z")], Plan(range, tailStart: At("2026-11-29T12:00:00Z")));
    }

    [Fact]
    public void A_day_that_ends_exactly_where_the_tail_starts_is_still_whole_and_clean()
    {
        var range = Range("2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", "1d");

        Assert.Equal([S(Source.Daily, "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z")], Plan(range, tailStart: At("2026-11-29T00:00:00Z")));
    }

    [Fact]
    public void Today_is_read_by_the_hour_up_to_the_tail_and_from_the_minutes_after_it()
    {
        var range = Range("2026-11-28T00:00:00Z", "2026-11-30T00:00:00Z", "1d");

        Assert.Equal(
            [
                S(Source.Daily, "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z"),
                S(Source.Hourly, "2026-11-29T00:00:00Z", "2026-11-29T12:00:00Z"),
                S(Source.Minute, "2026-11-29T12:00:00Z", "2026-11-30T00:00:00Z"),
            ],
            Plan(range, tailStart: At("2026-11-29T12:00:00Z")));
    }

    [Fact]
    public void A_day_with_a_dirty_hour_is_read_by_the_hour_and_that_hour_from_the_minutes()
    {
        var range = Range("2026-11-26T00:00:00Z", "2026-11-29T00:00:00Z", "1d");

        Assert.Equal(
            [
                S(Source.Daily, "2026-11-26T00:00:00Z", "2026-11-27T00:00:00Z"),
                S(Source.Hourly, "2026-11-27T00:00:00Z", "2026-11-27T23:00:00Z"),
                S(Source.Minute, "2026-11-27T23:00:00Z", "2026-11-28T00:00:00Z"),
                S(Source.Daily, "2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z"),
            ],
            Plan(range, Now, At("2026-11-27T23:00:00Z")));
    }

    [Fact]
    public void Day_buckets_in_a_whole_hour_zone_are_read_by_the_hour_never_from_the_utc_daily_rollup()
    {
        // Paris midnights are 23:00 UTC in winter: the UTC daily rows would put an hour in the wrong local day.
        var range = Range("2026-11-25T12:00:00Z", "2026-11-27T12:00:00Z", "1d", "Europe/Paris");
        Assert.Equal((At("2026-11-24T23:00:00Z"), At("2026-11-27T23:00:00Z")), (range.From, range.To));

        Assert.Equal(Hour, ClickSeriesStore.RowUnit(range, range.BucketStarts()));
        Assert.Equal([new Segment(Source.Hourly, range.From, range.To)], Plan(range, tailStart: Now));
    }

    [Fact]
    public void A_local_day_of_23_hours_on_a_clock_change_is_read_hour_by_hour()
    {
        // 2026-03-29 in Paris: 00:00 local is 23:00Z the day before, the next midnight 22:00Z: 23 hours.
        var range = Range("2026-03-29T00:00:00+01:00", "2026-03-30T00:00:00+02:00", "1d", "Europe/Paris");
        Assert.Equal(TimeSpan.FromHours(23), range.To - range.From);

        Assert.Equal([new Segment(Source.Hourly, range.From, range.To)], Plan(range, tailStart: Now));
    }

    [Fact]
    public void Day_buckets_in_a_half_hour_zone_are_summed_from_the_minutes()
    {
        // Kolkata midnights are 18:30 UTC: no whole hour fits the buckets, so rows come by the quarter hour, from the minutes.
        var range = Range("2026-11-25T00:00:00Z", "2026-11-27T00:00:00Z", "1d", "Asia/Kolkata");

        Assert.Equal(TimeSpan.FromMinutes(15), ClickSeriesStore.RowUnit(range, range.BucketStarts()));
        Assert.Equal([new Segment(Source.Minute, range.From, range.To)], Plan(range, tailStart: Now));
    }
}
