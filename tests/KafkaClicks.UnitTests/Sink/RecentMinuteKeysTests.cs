using KafkaClicks.Contracts;
using KafkaClicks.Sink;

namespace KafkaClicks.UnitTests.Sink;

/// <summary>
/// Which minute rows the sink takes for new and sends by COPY (<see cref="RecentMinuteKeys"/>). Taking a stored row for
/// new costs a rolled-back COPY; the memory must stay bounded and must never take a row it stored for new.
/// </summary>
public class RecentMinuteKeysTests
{
    private static readonly DateTime Start = DateTime.UnixEpoch.AddMinutes(Math.Floor((DateTime.UtcNow - DateTime.UnixEpoch).TotalMinutes) - 30);

    private static MinuteCount Row(long adId, int minute, int salt = 0) =>
        new() { AdId = adId, Salt = salt, WindowStart = Start.AddMinutes(minute), Clicks = 1, EmittedAt = Start };

    /// <summary>The ads of the rows taken for new, and of the others: "new 1,2 / stored 3".</summary>
    private static string Split(RecentMinuteKeys keys, params MinuteCount[] rows)
    {
        var (fresh, stored) = keys.Split([.. rows]);
        return $"new {string.Join(',', fresh.Select(r => r.AdId))} / stored {string.Join(',', stored.Select(r => r.AdId))}";
    }

    [Fact]
    public void A_row_it_stored_is_never_taken_for_new_and_a_salt_is_a_key_of_its_own()
    {
        var keys = new RecentMinuteKeys();
        Assert.Equal("new 1,2 / stored ", Split(keys, Row(1, 0), Row(2, 0)));
        keys.Remember([Row(1, 0), Row(2, 0)]);

        var (fresh, stored) = keys.Split([Row(1, 0), Row(2, 0, salt: 3), Row(3, 0), Row(1, 1)]);
        Assert.Equal([(2L, 3), (3L, 0), (1L, 0)], fresh.Select(r => (r.AdId, r.Salt)));
        Assert.Equal([1L], stored.Select(r => r.AdId));
    }

    [Fact]
    public void A_minute_where_another_writer_stored_rows_goes_by_the_upsert_from_then_on()
    {
        var keys = new RecentMinuteKeys();
        keys.Distrust([Row(1, 0)]);
        keys.Remember([Row(1, 0)]);
        Assert.Equal("new 8 / stored 1,2", Split(keys, Row(1, 0), Row(2, 0), Row(8, 1)));
    }

    [Fact]
    public void A_minute_older_than_a_day_is_never_taken_for_new()
    {
        var keys = new RecentMinuteKeys();
        var old = (int)-RecentMinuteKeys.MaxAge.TotalMinutes - 60;
        Assert.Equal("new  / stored 1", Split(keys, Row(1, old)));
        keys.Remember([Row(1, old)]);
        Assert.Equal("new 3 / stored 2", Split(keys, Row(2, old), Row(3, 0)));
    }

    [Fact]
    public void Only_the_newest_minutes_are_remembered()
    {
        var keys = new RecentMinuteKeys();
        for (var minute = 0; minute < RecentMinuteKeys.MaxMinutes + 2; minute++)
        {
            keys.Remember([Row(1, minute)]);
        }

        // The two oldest were given up, and a minute older than every one remembered is not taken up again.
        Assert.Equal("new  / stored 1,1,1,2", Split(keys, Row(1, 0), Row(1, 1), Row(1, -5), Row(2, 1)));
        Assert.Equal("new 2 / stored 1", Split(keys, Row(1, 2), Row(2, 2)));
    }

    [Fact]
    public void Past_the_key_limit_the_oldest_minute_is_given_up_first()
    {
        var keys = new RecentMinuteKeys();
        keys.Remember([.. Enumerable.Range(1, RecentMinuteKeys.MaxKeys).Select(ad => Row(ad, 0))]);
        keys.Remember([Row(1, 1)]);

        Assert.Equal("new  / stored 5,1", Split(keys, Row(5, 0), Row(1, 1)));
        Assert.Equal("new 2 / stored ", Split(keys, Row(2, 1)));
    }
}
