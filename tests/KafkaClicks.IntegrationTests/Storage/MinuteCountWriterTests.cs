using System.Diagnostics.Metrics;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Sink;

namespace KafkaClicks.IntegrationTests.Storage;

public class MinuteCountWriterTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly DateTime Minute = DateTime.UtcNow.Date.AddHours(9);

    private static MinuteCountRecord Count(long adId, long clicks, bool final, int secondsEmitted, int salt = 0, DateTime? minute = null, int partition = 0) =>
        new(new MinuteCount
        {
            AdId = adId,
            Salt = salt,
            WindowStart = minute ?? Minute,
            Clicks = clicks,
            Final = final,
            EmittedAt = Minute.AddMinutes(1).AddSeconds(secondsEmitted),
        }, partition);

    /// <summary>A progress marker of task <paramref name="task"/> of 2, read from partition <paramref name="partition"/> of 2.</summary>
    private static FinalProgressRecord Marker(int task, int partition, DateTime finalThrough, int tasks = 2, int partitions = 2) =>
        new(new FinalProgress
        {
            Task = task,
            Tasks = tasks,
            Partition = partition,
            Partitions = partitions,
            FinalThrough = finalThrough,
            EmittedAt = finalThrough.AddSeconds(40),
        }, partition);

    private static Task<DateTime?> CompleteThroughAsync(TestDatabase db) => ServiceDefaults.StreamProgress.CompleteThroughAsync(db.DataSource, default);

    private static async Task<(long Clicks, bool Final)> RowAsync(TestDatabase db, long adId, int salt = 0, DateTime? minute = null)
    {
        await using var command = db.DataSource.CreateCommand("SELECT clicks, final FROM ad_clicks_minute WHERE ad_id = $1 AND minute = $2 AND salt = $3");
        command.Parameters.AddWithValue(adId);
        command.Parameters.AddWithValue(minute ?? Minute);
        command.Parameters.AddWithValue((short)salt);
        await using var reader = await command.ExecuteReaderAsync();
        Assert.True(await reader.ReadAsync(), $"no row for ad {adId}");
        return (reader.GetInt64(0), reader.GetBoolean(1));
    }

    [Fact]
    public async Task A_rewritten_count_stays_on_its_page_so_neither_index_grows()
    {
        // Each partial emission and the final rewrite a minute row. With room left on every page the new version is
        // written beside the old one (a HOT update): no index gets an entry for it and pruning reclaims the old one.
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        await writer.WriteAsync(Enumerable.Range(1, 2_000).Select(ad => Count(ad, 1, false, 10)).ToList(), default);
        var before = await PagesAsync(db);

        // The next emission carries the ads clicked since the last one: here every other ad.
        var rewritten = Enumerable.Range(1, 2_000).Where(ad => ad % 2 == 0).ToList();
        await writer.WriteAsync(rewritten.Select(ad => Count(ad, 2, false, 20)).ToList(), default);
        var after = await PagesAsync(db);

        Assert.All(rewritten, ad => Assert.Equal(before[ad], after[ad]));
        Assert.Equal(rewritten.Count, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute WHERE clicks = 2"));
    }

    private static async Task<Dictionary<long, int>> PagesAsync(TestDatabase db)
    {
        await using var command = db.DataSource.CreateCommand("SELECT ad_id, (ctid::text::point)[0]::int FROM ad_clicks_minute");
        var pages = new Dictionary<long, int>();
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            pages[reader.GetInt64(0)] = reader.GetInt32(1);
        }

        return pages;
    }

    [Fact]
    public async Task Replaying_the_same_batch_changes_nothing()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        MinuteCountRecord[] batch = [Count(1, 5, false, 10), Count(2, 7, true, 10)];

        await writer.WriteAsync(batch, default);
        await writer.WriteAsync(batch, default);

        Assert.Equal((5L, false), await RowAsync(db, 1));
        Assert.Equal((7L, true), await RowAsync(db, 2));
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
    }

    /// <summary>
    /// A writer sends the rows it never stored for a recent minute by COPY, taking them for new. Rows another writer
    /// stored (this sink before a restart, the previous owner of a partition, the reconciler) must still follow the
    /// upsert's rules: a newer emission replaces the count, an older one changes nothing, a corrected row is left alone.
    /// </summary>
    [Fact]
    public async Task A_writer_that_never_stored_a_row_updates_it_by_the_usual_rules()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await new MinuteCountWriter(db.DataSource).WriteAsync(Enumerable.Range(1, 3_000).Select(ad => Count(ad, 1, false, 10)).ToList(), default);
        await db.ExecuteAsync("UPDATE ad_clicks_minute SET clicks = 40, corrected_at = now() WHERE ad_id = 3");

        // A restarted writer: newer counts of every stored row but the first, an older one of it, and a row no one stored.
        var batch = Enumerable.Range(2, 2_999).Select(ad => Count(ad, 2, final: ad % 2 == 0, 20))
            .Append(Count(1, 9, false, 5))
            .Append(Count(3_001, 5, false, 20))
            .ToList();
        await new MinuteCountWriter(db.DataSource).WriteAsync(batch, default);

        Assert.Equal(3_001L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
        Assert.Equal((1L, false), await RowAsync(db, 1));
        Assert.Equal((2L, true), await RowAsync(db, 2));
        Assert.Equal((40L, false), await RowAsync(db, 3));
        Assert.Equal((2L, false), await RowAsync(db, 2_999));
        Assert.Equal((5L, false), await RowAsync(db, 3_001));
        Assert.Equal(1L + 40 + (2 * 2_998) + 5, await db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_minute"));
    }

    /// <summary>Two sinks during a reassignment: both take the same rows for new, and the newer emission of each stands.</summary>
    [Fact]
    public async Task Two_writers_storing_the_same_new_rows_at_once_leave_the_newest_emission_of_each()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var (older, newer) = (new MinuteCountWriter(db.DataSource), new MinuteCountWriter(db.DataSource));

        await Task.WhenAll(
            older.WriteAsync(Enumerable.Range(1, 5_000).Select(ad => Count(ad, 1, false, 10)).ToList(), default),
            newer.WriteAsync(Enumerable.Range(1, 5_000).Select(ad => Count(ad, 2, false, 20)).ToList(), default));

        Assert.Equal(5_000L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute WHERE clicks = 2"));
        Assert.Equal(5_000L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
    }

    [Fact]
    public async Task A_batch_split_over_several_connections_stores_every_row_once_with_its_watermark()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource, connections: 3);
        var next = Minute.AddMinutes(1);
        var first = Enumerable.Range(1, 4_000).Select(ad => Count(ad, ad % 7, final: true, 10, partition: ad % 4)).ToList();
        var second = Enumerable.Range(1, 4_000).Select(ad => Count(ad, (ad % 7) + 1, final: false, 20, minute: next, partition: ad % 4))
            .Concat(Enumerable.Range(1, 4_000).Select(ad => Count(ad, 99, final: false, 5))) // older than the stored ones: ignored
            .ToList();

        IReadOnlyList<FinalProgressRecord> markers = [Marker(0, 0, next), Marker(0, 1, next), Marker(1, 0, next), Marker(1, 1, next)];
        await writer.WriteAsync(first, default, markers);
        await writer.WriteAsync(second, default);
        await writer.WriteAsync(second, default); // replayed

        Assert.Equal(8_000L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
        Assert.Equal(first.Sum(r => r.Count.Clicks), await db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_minute WHERE minute = $1 AND final", Minute));
        Assert.Equal(second.Take(4_000).Sum(r => r.Count.Clicks), await db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_minute WHERE minute = $1 AND NOT final", next));
        Assert.Equal((6L, true), await RowAsync(db, 6));

        // Written after every slice: the markers of both tasks on both partitions, and completeThrough passes the final minute.
        Assert.Equal(4L, await db.ScalarAsync<long>("SELECT count(*) FROM stream_progress WHERE final_through = $1", next));
        Assert.Equal(next, await CompleteThroughAsync(db));
    }

    [Fact]
    public async Task An_older_emission_after_a_newer_one_changes_nothing()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);

        await writer.WriteAsync([Count(1, 9, false, 20)], default);
        await writer.WriteAsync([Count(1, 4, false, 10)], default);

        Assert.Equal((9L, false), await RowAsync(db, 1));
    }

    [Fact]
    public async Task Partial_then_final_keeps_the_absolute_final_count_and_flag()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);

        await writer.WriteAsync([Count(1, 3, false, 10)], default);
        Assert.Equal((3L, false), await RowAsync(db, 1));
        await writer.WriteAsync([Count(1, 8, true, 40)], default);
        Assert.Equal((8L, true), await RowAsync(db, 1));
        await writer.WriteAsync([Count(1, 8, false, 50)], default);
        Assert.Equal((8L, true), await RowAsync(db, 1));
    }

    [Fact]
    public async Task The_newest_of_several_emissions_in_one_batch_wins_and_salts_stay_separate()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);

        await writer.WriteAsync([Count(1, 2, false, 10), Count(1, 6, true, 30), Count(1, 4, false, 20), Count(1, 5, true, 30, salt: 3)], default);

        Assert.Equal((6L, true), await RowAsync(db, 1));
        Assert.Equal((5L, true), await RowAsync(db, 1, salt: 3));
        Assert.Equal(11L, await db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_minute WHERE ad_id = 1"));
    }

    [Fact]
    public async Task Minutes_of_days_without_a_partition_yet_are_written()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        var old = Minute.AddDays(-6);
        var ahead = Minute.AddDays(12);

        await writer.WriteAsync([Count(1, 2, true, 10, minute: old), Count(1, 3, false, 10, minute: ahead)], default);

        Assert.Equal((2L, true), await RowAsync(db, 1, minute: old));
        Assert.Equal((3L, false), await RowAsync(db, 1, minute: ahead));
    }

    [Fact]
    [Trait("Category", "Billing")]
    public async Task CompleteThrough_is_the_least_marker_of_every_task_on_every_partition_and_waits_for_each()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);

        // Finals alone say nothing about the other tasks: no completeThrough.
        await writer.WriteAsync([Count(1, 1, true, 10, partition: 1)], default);
        Assert.Null(await CompleteThroughAsync(db));

        // Task 0 on both partitions, task 1 on one: a pair has not reported, so completeThrough is still unknown.
        await writer.WriteAsync([], default, [Marker(0, 0, Minute.AddMinutes(5)), Marker(0, 1, Minute.AddMinutes(5)), Marker(1, 0, Minute.AddMinutes(3))]);
        Assert.Null(await CompleteThroughAsync(db));

        // Every pair has: the least of them. Task 1 then stalls while task 0 runs on: completeThrough stays with task 1.
        await writer.WriteAsync([], default, [Marker(1, 1, Minute.AddMinutes(2))]);
        Assert.Equal(Minute.AddMinutes(2), await CompleteThroughAsync(db));
        await writer.WriteAsync([], default, [Marker(0, 0, Minute.AddMinutes(9)), Marker(0, 1, Minute.AddMinutes(9))]);
        Assert.Equal(Minute.AddMinutes(2), await CompleteThroughAsync(db));

        // A marker replayed from before never moves a pair back; task 1 catching up moves completeThrough on.
        await writer.WriteAsync([], default, [Marker(1, 1, Minute.AddMinutes(1)), Marker(1, 1, Minute.AddMinutes(8)), Marker(1, 0, Minute.AddMinutes(8))]);
        Assert.Equal(Minute.AddMinutes(8), await CompleteThroughAsync(db));
        await writer.WriteAsync([], default, [Marker(1, 1, Minute.AddMinutes(4))]);
        Assert.Equal(Minute.AddMinutes(8), await CompleteThroughAsync(db));

        // A third clicks.minute partition added: the new layout (2 x 3) is complete only when every pair of it reported.
        await writer.WriteAsync([], default, [Marker(0, 2, Minute.AddMinutes(10), partitions: 3)]);
        Assert.Null(await CompleteThroughAsync(db));
        await writer.WriteAsync([], default,
            [.. Enumerable.Range(0, 2).SelectMany(task => Enumerable.Range(0, 3).Select(partition => Marker(task, partition, Minute.AddMinutes(10 + task), partitions: 3)))]);
        Assert.Equal(Minute.AddMinutes(10), await CompleteThroughAsync(db));
    }

    [Fact]
    public async Task Freshness_is_measured_from_the_earliest_new_click_of_every_count_that_adds_clicks()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var writer = new MinuteCountWriter(db.DataSource);
        var now = DateTime.UtcNow;
        var window = now.AddTicks(-(now.Ticks % TimeSpan.TicksPerMinute)).AddHours(-2);
        MinuteCountRecord Emission(long adId, bool final, int secondsEmitted, DateTime? earliestNewClick)
        {
            var record = Count(adId, 3, final, secondsEmitted, minute: window);
            record.Count.EarliestNewClickAt = earliestNewClick;
            return record;
        }

        MinuteCountRecord[] batch =
        [
            Emission(1, false, 10, window.AddSeconds(15)),
            Emission(2, true, 40, null), // a final that adds no clicks to its last partial
            Emission(3, false, 10, window.AddMinutes(-5)), // not a click time of this window
            Emission(4, true, 40, window.AddSeconds(40)),
            Emission(5, false, 10, window.AddSeconds(10)), // superseded in the batch, yet its clicks land with it
            Emission(5, false, 20, window.AddSeconds(50)),
        ];
        var measured = new List<(double Seconds, bool Final)>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "kafkaclicks.sink.freshness")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<double>((_, value, tags, _) =>
        {
            lock (measured)
            {
                measured.Add((value, tags.ToArray().Single(t => t.Key == "final").Value is true));
            }
        });
        listener.Start();

        var before = DateTime.UtcNow;
        await writer.WriteAsync(batch, default);
        var after = DateTime.UtcNow;

        // Each value is the commit time minus the earliest new click, and the commit falls between before and after.
        (DateTime Click, bool Final)[] expected =
            [(window.AddSeconds(15), false), (window.AddSeconds(40), true), (window.AddSeconds(10), false), (window.AddSeconds(50), false)];
        Assert.Equal(expected.Length, measured.Count);
        Assert.All(expected, e => Assert.Contains(measured, m => m.Final == e.Final
            && m.Seconds >= (before - e.Click).TotalSeconds && m.Seconds <= (after - e.Click).TotalSeconds));
    }
}
