using KafkaClicks.Sink;
using Npgsql;

namespace KafkaClicks.UnitTests.Sink;

/// <summary>
/// Which rollup hours a change of minutes marks dirty (<see cref="Rollups.MarkDirty"/>), and which windows TimescaleDB
/// recomputes for a range (<see cref="Rollups.TimescaleWindows"/>): a minute missed by either would leave the hourly
/// and daily answers short of the minutes for good.
/// </summary>
public class RollupsTests
{
    private static DateTime Utc(int day, int hour, int minute = 0, int second = 0, int millisecond = 0) =>
        new(2026, 11, day, hour, minute, second, millisecond, DateTimeKind.Utc);

    private static DateTime[] MarkedHours(params DateTime[] minutes)
    {
        var command = Rollups.MarkDirty(minutes);
        var parameter = Assert.IsType<NpgsqlParameter<DateTime[]>>(Assert.Single(command.Parameters));
        return parameter.TypedValue!;
    }

    [Fact]
    public void Every_utc_hour_holding_a_changed_minute_is_marked_once_in_order()
    {
        var hours = MarkedHours(Utc(29, 11, 59), Utc(28, 23, 5), Utc(29, 11, 0), Utc(29, 0, 0), Utc(28, 23, 59, 59, 999));

        Assert.Equal([Utc(28, 23), Utc(29, 0), Utc(29, 11)], hours);
        Assert.All(hours, h => Assert.Equal(DateTimeKind.Utc, h.Kind));
    }

    [Fact]
    public void A_minute_on_the_hour_belongs_to_the_hour_it_starts()
    {
        Assert.Equal([Utc(29, 12)], MarkedHours(Utc(29, 12)));
        Assert.Equal([Utc(29, 11)], MarkedHours(Utc(29, 11, 59)));
    }

    [Fact]
    public void Nothing_changed_marks_nothing() => Assert.Empty(MarkedHours());

    [Fact]
    public void A_range_inside_hours_is_refreshed_over_the_whole_hours_and_utc_days_holding_it()
    {
        var (hourFrom, hourTo, dayFrom, dayTo) = Rollups.TimescaleWindows(Utc(28, 23, 20), Utc(29, 1, 10));

        Assert.Equal((Utc(28, 23), Utc(29, 2)), (hourFrom, hourTo));
        Assert.Equal((Utc(28, 0), Utc(30, 0)), (dayFrom, dayTo));
    }

    [Fact]
    public void A_range_on_hour_and_day_edges_is_refreshed_as_it_is()
    {
        Assert.Equal((Utc(29, 10), Utc(29, 12), Utc(29, 0), Utc(30, 0)), Rollups.TimescaleWindows(Utc(29, 10), Utc(29, 12)));
        Assert.Equal((Utc(28, 0), Utc(29, 0), Utc(28, 0), Utc(29, 0)), Rollups.TimescaleWindows(Utc(28, 0), Utc(29, 0)));
    }

    [Fact]
    public void One_minute_past_midnight_reaches_into_the_next_hour_and_day()
    {
        var (hourFrom, hourTo, dayFrom, dayTo) = Rollups.TimescaleWindows(Utc(28, 23, 59), Utc(29, 0, 1));

        Assert.Equal((Utc(28, 23), Utc(29, 1)), (hourFrom, hourTo));
        Assert.Equal((Utc(28, 0), Utc(30, 0)), (dayFrom, dayTo));
    }
}
