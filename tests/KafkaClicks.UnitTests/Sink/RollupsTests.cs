using KafkaClicks.Sink;
using Npgsql;

namespace KafkaClicks.UnitTests.Sink;

/// <summary>
/// Which (hour, ad) rollups a change of minutes marks dirty (<see cref="Rollups.MarkDirty"/>), and which windows TimescaleDB
/// recomputes for a range (<see cref="Rollups.TimescaleWindows"/>): a minute missed by either would leave the hourly
/// and daily answers short of the minutes for good.
/// </summary>
public class RollupsTests
{
    private static DateTime Utc(int day, int hour, int minute = 0, int second = 0, int millisecond = 0) =>
        new(2026, 11, day, hour, minute, second, millisecond, DateTimeKind.Utc);

    private static (DateTime Hour, long AdId)[] Marks(params (long AdId, DateTime Minute)[] changes)
    {
        var command = Rollups.MarkDirty(changes);
        Assert.Equal(2, command.Parameters.Count);
        var hours = Assert.IsType<NpgsqlParameter<DateTime[]>>(command.Parameters[0]).TypedValue!;
        var ads = Assert.IsType<NpgsqlParameter<long[]>>(command.Parameters[1]).TypedValue!;
        Assert.Equal(hours.Length, ads.Length);
        return hours.Zip(ads).ToArray();
    }

    [Fact]
    public void Every_utc_hour_of_each_ad_holding_a_changed_minute_is_marked_once()
    {
        var marks = Marks((7, Utc(29, 11, 59)), (3, Utc(28, 23, 5)), (7, Utc(29, 11, 0)), (3, Utc(29, 0, 0)), (3, Utc(28, 23, 59, 59, 999)), (2, Utc(29, 11, 30)));

        // In no set order: nothing locks them one by one any more (a row per hour on plain PostgreSQL; TimescaleDB's
        // mark_rollups_dirty orders the hours it upserts).
        Assert.Equal([(Utc(28, 23), 3L), (Utc(29, 0), 3L), (Utc(29, 11), 2L), (Utc(29, 11), 7L)], marks.Order());
        Assert.All(marks, m => Assert.Equal(DateTimeKind.Utc, m.Hour.Kind));
    }

    [Fact]
    public void A_minute_on_the_hour_belongs_to_the_hour_it_starts()
    {
        Assert.Equal([(Utc(29, 12), 1L)], Marks((1, Utc(29, 12))));
        Assert.Equal([(Utc(29, 11), 1L)], Marks((1, Utc(29, 11, 59))));
    }

    [Fact]
    public void Nothing_changed_marks_nothing() => Assert.Empty(Marks());

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
