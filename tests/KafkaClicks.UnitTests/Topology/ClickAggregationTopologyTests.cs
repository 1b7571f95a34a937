using KafkaClicks.Contracts;
using KafkaClicks.Topology;
using KafkaClicks.UnitTests.Infrastructure;
using static KafkaClicks.UnitTests.Infrastructure.AggregatorHarness;

namespace KafkaClicks.UnitTests.Topology;

public sealed class ClickAggregationTopologyTests
{
    private static readonly DateTime W0 = Noon;                 // 12:00 window
    private static readonly DateTime W1 = Noon.AddMinutes(1);   // 12:01 window
    private static readonly DateTime W2 = Noon.AddMinutes(2);   // 12:02 window

    private static DateTime At(int minute, int second, int millisecond = 0) =>
        Noon.AddMinutes(minute).AddSeconds(second).AddMilliseconds(millisecond);

    /// <summary>
    /// The counter reads and writes the impression store under Streamiz' metered layer (its clock reads cost the stream
    /// thread 5%), found in Streamiz' internals: an upgrade that moves them must fail here, not quietly slow the stream
    /// down, and the layer found must still be the one that writes the changelog, or a restart would lose impressions.
    /// </summary>
    [Fact]
    public void The_counter_finds_the_changelogged_impression_store_under_the_metered_one()
    {
        var store = ClickAggregationTopology.ImpressionStoreBuilder(new AggregationOptions())
            .Build(new Streamiz.Kafka.Net.StreamConfig { ApplicationId = "store-test", BootstrapServers = "mock:9092" });

        var bytes = ImpressionStoreBytes.Below(store);

        Assert.NotNull(bytes);
        Assert.Equal("ChangeLoggingWindowBytesStore", bytes.InnerStoreType);
    }

    [Fact]
    public void Nothing_is_emitted_without_clicks()
    {
        using var h = new AggregatorHarness();
        Assert.Empty(h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void Tumbling_boundaries_last_and_first_millisecond_land_in_different_windows()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-a", 1, At(0, 0, 0));
        h.Click("imp-b", 1, At(0, 59, 999));
        h.Click("imp-c", 1, At(1, 0, 0));

        var emitted = h.TickAndRead();

        Assert.Equal(
            [Emitted.Of(1, W0, 2, false), Emitted.Of(1, W1, 1, false)],
            emitted);
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void Window_is_chosen_by_ClickedAt_not_by_record_timestamp()
    {
        using var h = new AggregatorHarness();
        // Record timestamps an hour apart and in the opposite order; clickedAt decides window and stream time.
        h.Click("imp-a", 3, At(0, 20), recordTimestamp: Noon.AddHours(1));
        h.Click("imp-b", 3, At(0, 10), recordTimestamp: Noon.AddHours(-1));
        h.Click("imp-c", 3, At(1, 5), recordTimestamp: Noon.AddHours(-2));

        Assert.Equal(
            [Emitted.Of(3, W0, 2, false), Emitted.Of(3, W1, 1, false)],
            h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void A_click_stamped_in_the_future_by_a_fast_clock_is_counted_without_making_the_other_hosts_clicks_late()
    {
        using var h = new AggregatorHarness();
        var now = DateTime.UtcNow;
        var minute = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc);
        var onTime = now.AddSeconds(-1) < minute ? minute : now.AddSeconds(-1);

        h.Click("imp-1", 5, onTime);
        h.Click("imp-fast", 6, now.AddHours(2));   // an ingest host two hours ahead: counted as made now
        h.Click("imp-2", 5, onTime);               // on time: its window is still open
        h.Click("imp-1", 5, onTime.AddMilliseconds(500)); // a repeat is still known as one

        Assert.Empty(h.ReadLate());
        var emitted = h.TickAndRead();
        Assert.Contains(Emitted.Of(5, minute, 2, false), emitted);
        var fast = Assert.Single(emitted, e => e.AdId == 6);
        Assert.Equal(1, fast.Clicks);
        Assert.InRange(fast.WindowStart, minute, minute.AddMinutes(1));
    }

    [Fact]
    public void Partial_after_emit_interval_then_final_with_full_count_as_soon_as_stream_time_passes_grace_then_nothing_more()
    {
        using var h = new AggregatorHarness();
        Assert.Equal(TimeSpan.FromSeconds(30), h.Options.Grace);

        h.Click("imp-1", 7, At(0, 1));
        h.Click("imp-2", 7, At(0, 2));
        h.Click("imp-3", 7, At(0, 3));
        Assert.Empty(h.ReadMinute()); // nothing before the punctuation

        Assert.Equal([Emitted.Of(7, W0, 3, false)], h.TickAndRead());

        h.Click("imp-4", 7, At(0, 30));
        h.Click("imp-5", 7, At(0, 45));
        Assert.Equal([Emitted.Of(7, W0, 5, false)], h.TickAndRead());

        // Stream time one millisecond before window end + grace: still open, nothing changed, nothing emitted.
        h.Click("imp-x", 8, At(1, 29, 999));
        Assert.Equal([Emitted.Of(8, W1, 1, false)], h.TickAndRead());

        // Stream time reaches window end + grace (12:01:30.000): the 12:00 window's final goes out with this click,
        // without waiting for the punctuation, which then carries only the open window's partial.
        h.Click("imp-y", 8, At(1, 30));
        Assert.Equal([Emitted.Of(7, W0, 5, true)], AggregatorHarness.Sorted(h.ReadMinute()));
        Assert.Equal([Emitted.Of(8, W1, 2, false)], h.TickAndRead());

        // No further record for the closed window, and no re-emit of the unchanged open one.
        Assert.Empty(h.TickAndRead());
        Assert.Empty(h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    [Trait("Category", "Billing")]
    public void When_clicks_stop_the_last_minute_turns_final_once_the_wall_clock_has_moved_stream_time_past_grace()
    {
        using var h = new AggregatorHarness(new AggregationOptions { EmitInterval = TimeSpan.FromSeconds(10) });
        h.Click("imp-1", 7, At(0, 40));
        h.Click("imp-2", 7, At(0, 50));
        Assert.Equal([Emitted.Of(7, W0, 2, false)], h.TickAndRead());

        // No more clicks: stream time moves on at the wall clock's pace from 12:00:50, one emit interval (10 s here) per
        // punctuation, and the 12:00 window closes when it reaches 12:01:30 (end + grace), four punctuations later.
        Assert.Empty(h.TickAndRead());
        Assert.Empty(h.TickAndRead());
        Assert.Empty(h.TickAndRead());
        Assert.Equal([Emitted.Of(7, W0, 2, true)], h.TickAndRead());
        Assert.Empty(h.TickAndRead());

        // The window is closed: a click for it now is late, not a change of its final count.
        h.Click("imp-3", 7, At(0, 55));
        Assert.Equal("imp-3", Assert.Single(h.ReadLate()).Key);
        Assert.Empty(h.TickAndRead());
    }

    [Fact]
    [Trait("Category", "Billing")]
    public void A_partition_still_delivering_clicks_is_not_moved_on_the_wall_clock()
    {
        using var h = new AggregatorHarness();

        // A backlog being read: every interval brings clicks whose times lag far behind the wall clock. Ten intervals
        // of wall-clock time pass, far more than the grace, yet the 12:00 window stays open: stream time is the clicks'.
        for (var i = 0; i < 10; i++)
        {
            h.Click($"imp-{i}", 7, At(0, 10 + i));
            Assert.Equal([Emitted.Of(7, W0, i + 1, false)], h.TickAndRead());
        }

        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void Each_count_carries_the_click_time_of_the_earliest_click_it_adds_and_none_when_it_adds_none()
    {
        using var h = new AggregatorHarness();
        DateTime? EarliestNewClick(long adId, bool final) =>
            h.ReadMinute().Select(r => r.Value).Single(c => c.AdId == adId && c.Final == final).EarliestNewClickAt?.ToUniversalTime();

        h.Click("imp-1", 7, At(0, 20));
        h.Click("imp-2", 7, At(0, 5)); // out of order: the earliest, though not the first processed
        h.Click("imp-2", 7, At(0, 1)); // a repeat adds no click, so not its time either
        h.Tick();
        Assert.Equal(At(0, 5), EarliestNewClick(7, final: false));

        h.Click("imp-3", 7, At(0, 40));
        h.Tick();
        Assert.Equal(At(0, 40), EarliestNewClick(7, final: false)); // only the clicks since the last emission

        h.Click("imp-4", 8, At(1, 30)); // closes 12:00 with nothing added since its partial
        Assert.Null(EarliestNewClick(7, final: true));

        h.Click("imp-5", 8, At(1, 50));
        h.Click("imp-6", 9, At(2, 31)); // closes 12:01, whose clicks were never emitted as a partial
        Assert.Equal(At(1, 30), EarliestNewClick(8, final: true));
    }

    [Fact]
    public void Final_is_emitted_even_when_the_window_did_not_change_since_its_last_partial()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-1", 9, At(0, 10));
        Assert.Equal([Emitted.Of(9, W0, 1, false)], h.TickAndRead());
        Assert.Empty(h.TickAndRead());

        h.Click("imp-2", 10, At(2, 0)); // closes 12:00 (12:01:30 <= 12:02:00)
        Assert.Equal(
            [Emitted.Of(9, W0, 1, true), Emitted.Of(10, W2, 1, false)],
            h.TickAndRead());
        Assert.Empty(h.TickAndRead());
    }

    [Fact]
    public void Clicks_inside_grace_and_out_of_order_within_grace_are_counted()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-1", 5, At(0, 10));
        h.Click("imp-2", 5, At(1, 10));          // stream time 12:01:10, window 12:00 ended but in grace
        h.Click("imp-3", 5, At(0, 40));          // out of order, within grace
        h.Click("imp-4", 5, At(1, 29, 999));     // stream time 12:01:29.999
        h.Click("imp-5", 5, At(0, 59, 999));     // out of order, last millisecond of the window, still in grace

        Assert.Equal(
            [Emitted.Of(5, W0, 3, false), Emitted.Of(5, W1, 2, false)],
            h.TickAndRead());

        h.Click("imp-6", 5, At(1, 30));          // closes 12:00
        Assert.Equal(
            [Emitted.Of(5, W0, 3, true), Emitted.Of(5, W1, 3, false)],
            h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void Click_for_a_closed_window_goes_to_clicks_late_keyed_by_impression_and_is_not_counted()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-1", 5, At(0, 10));
        h.Click("imp-2", 5, At(1, 30));                   // stream time = 12:00 end + grace: 12:00 closed
        var late1 = h.Click("imp-late-1", 5, At(0, 59, 999)); // closed before its final was even emitted
        var late2 = h.Click("imp-late-2", 5, At(0, 0));

        Assert.Equal(
            [Emitted.Of(5, W0, 1, true), Emitted.Of(5, W1, 1, false)],
            h.TickAndRead());

        var late3 = h.Click("imp-late-3", 5, At(0, 30));  // after the final
        var late4 = h.Click("imp-late-4", 6, At(-3, 0));  // a window that never had a click
        Assert.Empty(h.TickAndRead());                     // nothing counted, nothing re-emitted

        var late = h.ReadLate();
        Assert.Equal(["imp-late-1", "imp-late-2", "imp-late-3", "imp-late-4"], late.Select(l => l.Key));
        AssertSameClick(late1, late[0].Value);
        AssertSameClick(late2, late[1].Value);
        AssertSameClick(late3, late[2].Value);
        AssertSameClick(late4, late[3].Value);
    }

    [Fact]
    public void Late_click_does_not_reopen_or_change_the_counts_of_open_windows()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-1", 5, At(1, 40));          // window 12:01, stream time 12:01:40: 12:00 is closed
        h.Click("imp-late", 5, At(0, 5));
        Assert.Equal([Emitted.Of(5, W1, 1, false)], h.TickAndRead());
        Assert.Equal(["imp-late"], h.ReadLate().Select(l => l.Key));
        Assert.Empty(h.TickAndRead());
    }

    [Fact]
    public void Same_impression_twice_in_the_same_window_counts_once()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-1", 4, At(0, 10));
        h.Click("imp-1", 4, At(0, 10));
        h.Click("imp-2", 4, At(0, 20));
        h.Click("imp-1", 4, At(0, 50));
        Assert.Equal([Emitted.Of(4, W0, 2, false)], h.TickAndRead());

        // A repeat after the partial changes nothing, so nothing is re-emitted.
        h.Click("imp-2", 4, At(0, 55));
        Assert.Empty(h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void Same_impression_in_a_different_minute_counts_once()
    {
        using var h = new AggregatorHarness();
        Assert.Equal(TimeSpan.FromHours(1), h.Options.ImpressionLifetime);

        h.Click("imp-1", 4, At(0, 10));
        h.Click("imp-2", 4, At(0, 50));
        h.Click("imp-1", 4, At(1, 10));          // next minute, open window
        h.Click("imp-3", 4, At(1, 20));
        h.Click("imp-2", 4, At(0, 5));           // earlier minute-part, out of order

        Assert.Equal(
            [Emitted.Of(4, W0, 2, false), Emitted.Of(4, W1, 1, false)],
            h.TickAndRead());

        // Nine minutes later: dropped, neither counted nor late.
        h.Click("imp-1", 4, At(9, 30));
        h.Click("imp-3", 4, At(10, 20));         // window 12:10, exactly 9 minutes after its first window
        h.Click("imp-4", 4, At(10, 25));         // a fresh impression in 12:10
        Assert.Equal(
            [Emitted.Of(4, W0, 2, true), Emitted.Of(4, W1, 1, true), Emitted.Of(4, Noon.AddMinutes(10), 1, false)],
            h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void An_out_of_order_repeat_and_a_repeat_for_a_closed_window_are_dropped()
    {
        using var h = new AggregatorHarness();
        var nextBucket = Noon.AddMinutes(10); // impressions are filed under 10-minute buckets of their issue time

        h.Click("imp-x", 4, nextBucket.AddSeconds(5));    // counted first, issued 12:10:00
        h.Click("imp-x", 4, nextBucket.AddSeconds(-10));  // 12:09:50: out of order but within grace, the same impression
        h.Click("imp-y", 4, nextBucket.AddSeconds(40));   // stream time 12:10:40
        h.Click("imp-y", 4, Noon.AddMinutes(5));          // 12:05 window is closed: a repeat, not a late click

        Assert.Equal([Emitted.Of(4, nextBucket, 2, false)], h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    [Trait("Category", "Billing")]
    public void A_repeat_within_the_impression_lifetime_is_dropped_however_long_after_the_first_click()
    {
        using var h = new AggregatorHarness();
        Assert.Equal(TimeSpan.FromHours(1), h.Options.ImpressionLifetime);
        h.Click("imp-1", 4, At(0, 10), impressionAt: Noon.AddSeconds(-30));

        // Half an hour of other clicks: every window before 12:30 closes.
        for (var minute = 1; minute <= 30; minute++)
        {
            h.Click($"other-{minute}", 5, At(minute, 0));
        }

        Assert.Contains(Emitted.Of(4, W0, 1, true), h.TickAndRead());

        // 55 minutes after the first click (Redis lost the claim, or the click came unchecked): dropped, not late.
        h.Click("imp-1", 4, At(55, 0));
        h.Click("imp-2", 4, At(55, 1));
        Assert.Equal([Emitted.Of(4, Noon.AddMinutes(55), 1, false)], h.TickAndRead().Where(e => e.AdId == 4));
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    [Trait("Category", "Billing")]
    public void A_click_made_after_its_impressions_lifetime_is_counted_and_kept_so_its_prompt_repeat_is_dropped()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-fresh", 4, At(0, 5));                                                  // issued 12:00:00: the store's time
        h.Click("imp-old", 4, At(0, 10), impressionAt: Noon.AddHours(-3));                  // issued 09:00, beyond 1 h
        h.Click("imp-old", 4, At(0, 20));                                                   // its repeat
        Assert.Equal([Emitted.Of(4, W0, 2, false)], h.TickAndRead());
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    [Trait("Category", "Billing")]
    public void An_impression_issued_by_a_clock_hours_ahead_does_not_push_other_impressions_out_of_the_store()
    {
        using var h = new AggregatorHarness();
        h.Click("imp-1", 4, At(0, 10), impressionAt: Noon);
        // Minted by an ingest host whose clock ran 3 hours fast: filed by its click (at most a bucket ahead), not under
        // 15:00, where the store's time would move past imp-1's bucket and drop it.
        h.Click("imp-ahead", 5, At(0, 20), impressionAt: Noon.AddHours(3));
        h.Click("imp-ahead", 5, At(0, 40));
        h.Click("imp-1", 4, At(1, 0));
        var emitted = h.TickAndRead();
        Assert.Equal([Emitted.Of(4, W0, 1, false)], emitted.Where(e => e.AdId == 4));
        Assert.Equal([Emitted.Of(5, W0, 1, false)], emitted.Where(e => e.AdId == 5));
        Assert.Empty(h.ReadLate());
    }

    [Fact]
    public void Salted_ad_gives_one_sub_count_per_salt_and_their_sum_is_the_click_count()
    {
        using var h = new AggregatorHarness();
        const long ad = 42;
        var clicks = 0;
        for (var salt = 0; salt < 4; salt++)
        {
            for (var i = 0; i <= salt; i++) // salt s gets s + 1 clicks
            {
                h.Click($"imp-{salt}-{i}", ad, At(0, 5 + (salt * 10) + i), salt);
                clicks++;
            }
        }

        var partial = h.TickAndRead();
        Assert.Equal(
            [
                Emitted.Of(ad, W0, 1, false, salt: 0),
                Emitted.Of(ad, W0, 2, false, salt: 1),
                Emitted.Of(ad, W0, 3, false, salt: 2),
                Emitted.Of(ad, W0, 4, false, salt: 3),
            ],
            partial);
        Assert.All(partial, e => Assert.Equal("42", e.Key));
        Assert.Equal(clicks, partial.Sum(e => e.Clicks));

        h.Click("imp-close", 43, At(1, 30));
        var final = h.TickAndRead().Where(e => e.AdId == ad).ToList();
        Assert.Equal(
            [
                Emitted.Of(ad, W0, 1, true, salt: 0),
                Emitted.Of(ad, W0, 2, true, salt: 1),
                Emitted.Of(ad, W0, 3, true, salt: 2),
                Emitted.Of(ad, W0, 4, true, salt: 3),
            ],
            final);
        Assert.Equal(10, final.Sum(e => e.Clicks));
    }

    [Fact]
    public void Salted_sub_counts_with_the_production_salt_function()
    {
        using var h = new AggregatorHarness();
        const long ad = 77;
        var expected = new long[4];
        for (var i = 0; i < 200; i++)
        {
            var id = $"imp-77-{i}";
            var salt = ClickPartitioning.SaltFor(id, 4);
            expected[salt]++;
            h.Click(id, ad, At(0, i % 60, i), salt);
        }

        h.Click("imp-close", 78, At(1, 30));
        var final = h.TickAndRead().Where(e => e.AdId == ad).ToList();
        Assert.Equal(
            Enumerable.Range(0, 4).Where(s => expected[s] > 0).Select(s => Emitted.Of(ad, W0, expected[s], true, salt: s)),
            final);
        Assert.Equal(200, final.Sum(e => e.Clicks));
    }

    [Fact]
    public void Only_changed_windows_are_re_emitted_as_partial()
    {
        using var h = new AggregatorHarness();
        h.Click("a-1", 1, At(0, 5));
        h.Click("b-1", 2, At(0, 6));
        Assert.Equal([Emitted.Of(1, W0, 1, false), Emitted.Of(2, W0, 1, false)], h.TickAndRead());

        h.Click("b-2", 2, At(0, 7));
        Assert.Equal([Emitted.Of(2, W0, 2, false)], h.TickAndRead());

        Assert.Empty(h.TickAndRead());

        h.Click("a-2", 1, At(1, 5));             // a new window of ad 1; its 12:00 window is unchanged
        Assert.Equal([Emitted.Of(1, W1, 1, false)], h.TickAndRead());

        h.Click("c-1", 3, At(1, 30));            // closes 12:00
        Assert.Equal(
            [Emitted.Of(1, W0, 1, true), Emitted.Of(2, W0, 2, true), Emitted.Of(3, W1, 1, false)],
            h.TickAndRead());
        Assert.Empty(h.TickAndRead());
    }

    [Fact]
    public void Non_default_emit_interval_and_grace_are_honoured()
    {
        using var h = new AggregatorHarness(new AggregationOptions
        {
            EmitInterval = TimeSpan.FromSeconds(2),
            Grace = TimeSpan.FromSeconds(5),
            ImpressionLifetime = TimeSpan.FromMinutes(3),
        });

        h.Click("imp-1", 1, At(0, 10));
        h.Click("imp-2", 1, At(1, 4, 999));      // 12:01:04.999 < 12:01:05: still in the 5 s grace
        h.Click("imp-3", 1, At(0, 20));
        Assert.Equal([Emitted.Of(1, W0, 2, false), Emitted.Of(1, W1, 1, false)], h.TickAndRead()); // after 2 s

        h.Click("imp-4", 1, At(1, 5));           // 12:01:05 = end + 5 s grace: closed
        h.Click("imp-5", 1, At(0, 30));          // late with a 5 s grace (would count with the default 30 s)
        Assert.Equal([Emitted.Of(1, W0, 2, true), Emitted.Of(1, W1, 2, false)], h.TickAndRead());
        Assert.Equal(["imp-5"], h.ReadLate().Select(l => l.Key));
    }

    [Fact]
    public void Five_hundred_ads_with_random_clicks_final_counts_equal_distinct_impressions_per_ad_and_minute()
    {
        using var h = new AggregatorHarness();
        var random = new Random(20250115);
        const int ads = 500;

        // Processing order: time moves forward in small steps; clickedAt jitters up to 20 s behind it (inside the
        // 30 s grace, so nothing is late); ~10 % of the clicks repeat an earlier impression of the same ad.
        var expected = new Dictionary<(long AdId, DateTime Window), long>();
        var seen = new HashSet<string>();
        var idsByAd = new Dictionary<long, List<string>>();
        var now = At(0, 0);
        var end = At(4, 0);
        var piped = 0;
        var next = 0;
        while (now < end)
        {
            now = now.AddMilliseconds(random.Next(1, 120));
            var ad = piped < ads ? piped + 1L : random.Next(1, ads + 1); // every ad gets at least one click
            var clickedAt = now.AddMilliseconds(-random.Next(0, 20_000));
            if (clickedAt < Noon)
            {
                clickedAt = Noon;
            }

            var ids = idsByAd.TryGetValue(ad, out var list) ? list : idsByAd[ad] = [];
            var id = ids.Count > 0 && random.NextDouble() < 0.1 ? ids[random.Next(ids.Count)] : $"imp-{ad}-{next++}";
            ids.Add(id);
            if (seen.Add(id))
            {
                var window = new DateTime(clickedAt.Ticks - (clickedAt.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc);
                expected[(ad, window)] = expected.GetValueOrDefault((ad, window)) + 1;
            }

            h.Click(id, ad, clickedAt);
            if (++piped % 500 == 0)
            {
                h.Tick();
            }
        }

        Assert.True(piped > 3000, $"only {piped} clicks");
        Assert.True(expected.Keys.Select(k => k.AdId).Distinct().Count() == ads, "every ad should have clicks");

        // Close every window: a click of another ad far ahead in time.
        h.Click("imp-closer", ads + 1, At(10, 0));
        h.Tick();
        h.Tick();

        var all = Sorted(h.ReadMinute());
        var finals = all.Where(e => e.Final).ToList();
        Assert.Equal(expected.Count, finals.Count);
        Assert.Equal(finals.Count, finals.Select(e => (e.AdId, e.WindowStart)).Distinct().Count()); // one final each
        foreach (var final in finals)
        {
            Assert.True(expected.TryGetValue((final.AdId, final.WindowStart), out var count), $"unexpected final {final}");
            Assert.Equal((final.AdId, final.WindowStart, count), (final.AdId, final.WindowStart, final.Clicks));
            Assert.Equal(final.AdId.ToString(System.Globalization.CultureInfo.InvariantCulture), final.Key);
        }

        // Partials never exceed the final count, and each window's last record is its final.
        foreach (var group in all.Where(e => e.AdId <= ads).GroupBy(e => (e.AdId, e.WindowStart)))
        {
            Assert.All(group, e => Assert.True(e.Clicks <= expected[group.Key]));
        }

        Assert.Equal(expected.Values.Sum(), finals.Sum(e => e.Clicks));
        Assert.Equal([Emitted.Of(ads + 1, Noon.AddMinutes(10), 1, false)], all.Where(e => e.AdId == ads + 1));
        Assert.Empty(h.ReadLate());
    }

    private static void AssertSameClick(ClickEvent expected, ClickEvent actual)
    {
        Assert.Equal(expected.ImpressionId, actual.ImpressionId);
        Assert.Equal(expected.AdId, actual.AdId);
        Assert.Equal(expected.AdvertiserId, actual.AdvertiserId);
        Assert.Equal(expected.Salt, actual.Salt);
        Assert.Equal(expected.ClickedAt, actual.ClickedAt.ToUniversalTime());
        Assert.Equal(expected.ImpressionAt, actual.ImpressionAt.ToUniversalTime());
        Assert.Equal(expected.DedupeChecked, actual.DedupeChecked);
        Assert.Equal(expected.IngestInstance, actual.IngestInstance);
    }
}
