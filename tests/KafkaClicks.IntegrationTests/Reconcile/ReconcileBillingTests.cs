using KafkaClicks.Broker;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using static KafkaClicks.IntegrationTests.Infrastructure.RawClicks;
using static KafkaClicks.IntegrationTests.Reconcile.ReconcileTests;

namespace KafkaClicks.IntegrationTests.Reconcile;

/// <summary>
/// Reconciliation never lowers a count the log supports and never freezes a count the stream is still making (issue 20,
/// items 2 and 6): runs read the log to their own start, take turns, are made up when missed, and correct final windows only.
/// </summary>
[Trait("Category", "Billing")]
public class ReconcileBillingTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly DateTime T0 = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour).AddHours(-3);

    private static ClickReconciler Reconciler(TestDatabase db, BrokerHandle broker) => new(db.DataSource, Counter(broker, TimeSpan.FromMinutes(5)));

    private static ReconciliationScheduler Scheduler(TestDatabase db, BrokerHandle broker, ReconcilerOptions options) =>
        new(Reconciler(db, broker), db.DataSource, Options.Create(options), TimeProvider.System, NullLogger<ReconciliationScheduler>.Instance);

    /// <summary>Clicks of ads 1-3 spread over T0's hour.</summary>
    private static List<ClickEvent> HourOfClicks(int count) =>
        Enumerable.Range(0, count).Select(i => Click(1 + (i % 3), T0.AddSeconds(i * 3600.0 / count))).ToList();

    /// <summary>`kafkaclicks reconcile` over T0's first 10 minutes exits 2 with one line naming <paramref name="option"/> and saying <paramref name="why"/>.</summary>
    private static async Task AssertCommandLineRefusesAsync(Dictionary<string, string> environment, string option, string why)
    {
        var (code, _, error) = await CliRunner.RunAsync(environment,
            "reconcile", "--from", T0.ToString("O"), "--to", T0.AddMinutes(10).ToString("O"));
        Assert.Equal(2, code);
        Assert.StartsWith($"kafkaclicks: {option}: ", error, StringComparison.Ordinal);
        Assert.Contains(why, error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task A_run_over_windows_not_final_yet_is_refused_changes_nothing_and_the_command_line_exits_2()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var reconciler = Reconciler(db, broker);

        // The current minute is open: the log holds 3 clicks, the stream has stored 2 of them so far.
        var now = DateTime.UtcNow;
        var minute = now.AddTicks(-(now.Ticks % TimeSpan.TicksPerMinute));
        Produce(broker, 4, Enumerable.Range(0, 3).Select(_ => Click(1, now)));
        await db.ExecuteAsync("INSERT INTO ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at) VALUES (1, $1, 0, 2, false, $2)", minute, now);

        var refused = await Assert.ThrowsAsync<RangeNotFinalException>(
            () => reconciler.RunAsync(new ReconcileRequest(minute.AddMinutes(-10), minute.AddMinutes(1), null, DryRun: false), null, default));
        Assert.True(refused.FinalThrough <= minute);
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 1"));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute WHERE corrected_at IS NOT NULL"));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM reconciliation_runs"));

        // A dry run may look at open windows: it changes nothing.
        var dry = await reconciler.RunAsync(new ReconcileRequest(minute.AddMinutes(-10), minute.AddMinutes(1), null, DryRun: true), null, default);
        Assert.Equal((3L, 2L), (dry.LargestDifferences.Single().RawClicks, dry.LargestDifferences.Single().DbClicks));

        // An aggregator lagging behind the clock: closed by the wall clock, T0 + 7 is not final until the stream says so.
        await ClickRows.CompleteThroughAsync(db, T0.AddMinutes(5));
        Produce(broker, 4, [Click(2, T0.AddMinutes(2)), Click(2, T0.AddMinutes(2).AddSeconds(5)), Click(3, T0.AddMinutes(7)), Click(3, T0.AddMinutes(7).AddSeconds(5))]);
        await StoreAsync(db, [new((2, T0.AddMinutes(2), 0), 1), new((3, T0.AddMinutes(7), 0), 1)]);
        await Assert.ThrowsAsync<RangeNotFinalException>(() => reconciler.RunAsync(new ReconcileRequest(T0, T0.AddMinutes(10), null, DryRun: false), null, default));
        Assert.Equal(T0.AddMinutes(5), await reconciler.FinalThroughAsync(default));
        var report = await reconciler.RunAsync(new ReconcileRequest(T0, T0.AddMinutes(5), null, DryRun: false), null, default);
        Assert.Equal(1, report.WindowsCorrected);
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 2"));
        Assert.Equal(1L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 3"));

        // The command line refuses it as a bad argument, in a sentence.
        await AssertCommandLineRefusesAsync(CliEnvironment(broker, db), "--to", "are final");
        Assert.Equal(1L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 3"));
    }

    /// <summary>
    /// With minutes kept for less time than clicks.raw (Sink:MinuteRetention shorter than Kafka:RawRetention), a correcting
    /// run over a dropped day would write only its range's windows into a day of their own and recompute their hours
    /// from them: the rest of those hours' clicks would leave the rollups. Such a run is refused; a dry run may look.
    /// </summary>
    [Fact]
    public async Task A_run_over_minutes_past_their_retention_is_refused_changes_nothing_and_the_command_line_exits_2()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var retention = TimeSpan.FromHours(2);
        var reconciler = new ClickReconciler(db.DataSource, Counter(broker, TimeSpan.FromMinutes(5)), minuteRetention: retention);

        // T0 (3 hours ago) is past a 2-hour minute retention: the log holds 3 clicks of ad 1 there, the database 2.
        Produce(broker, 4, Enumerable.Range(0, 3).Select(i => Click(1, T0.AddMinutes(1).AddSeconds(i))));
        await StoreAsync(db, [new((1, T0.AddMinutes(1), 0), 2)]);

        var refused = await Assert.ThrowsAsync<RangeBeyondMinuteRetentionException>(
            () => reconciler.RunAsync(new ReconcileRequest(T0, T0.AddMinutes(10), null, DryRun: false), null, default));
        Assert.True(refused.KeptFrom > T0);
        await Assert.ThrowsAsync<RangeBeyondMinuteRetentionException>(
            () => reconciler.RunScheduledAsync(ReconciliationScheduler.Hourly, T0, T0.AddHours(1), default));
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 1"));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute WHERE corrected_at IS NOT NULL"));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM reconciliation_runs"));

        // A dry run may look: it changes nothing.
        var dry = await reconciler.RunAsync(new ReconcileRequest(T0, T0.AddMinutes(10), null, DryRun: true), null, default);
        Assert.Equal((3L, 2L), (dry.LargestDifferences.Single().RawClicks, dry.LargestDifferences.Single().DbClicks));

        // The command line, configured alike, refuses it as a bad argument, in a sentence.
        var environment = CliEnvironment(broker, db);
        environment["KAFKACLICKS_Sink__MinuteRetention"] = "02:00:00";
        await AssertCommandLineRefusesAsync(environment, "--from", "Sink:MinuteRetention");
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 1"));
    }

    [Fact]
    public async Task A_scheduled_run_reads_the_log_to_its_own_start_so_it_never_lowers_a_late_click_recount()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();

        // T0's hour: clicks written on time, and clicks of the hour that reached the log at T0 + 1:10 (a spool drained
        // after a broker outage), after the hour's end plus Reconciler:Lateness. The late-click recount counted them.
        var onTime = HourOfClicks(60);
        var late = Enumerable.Range(0, 6).Select(i => Click(1 + (i % 2), T0.AddMinutes(40).AddSeconds(i))).ToList();
        Produce(broker, 4, onTime);
        Produce(broker, 4, late, writtenAt: T0.AddHours(1).AddMinutes(10));
        var truth = Truth(onTime.Concat(late));
        await StoreAsync(db, truth);

        // The hour's scheduled run (made up now, or simply later than T0 + 1:05) reads them too and changes nothing.
        var report = await Reconciler(db, broker).RunScheduledAsync(ReconciliationScheduler.Hourly, T0, T0.AddHours(1), default);

        Assert.NotNull(report);
        Assert.Equal(truth.Values.Sum(), report.RawClicks);
        Assert.Equal(0, report.WindowsCorrected);
        Assert.Equal(Totals(truth), await StoredTotalsAsync(db));
    }

    [Fact]
    public async Task Runs_take_turns_and_one_that_waited_reads_what_was_written_meanwhile()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var onTime = HourOfClicks(30);
        Produce(broker, 4, onTime);
        await StoreAsync(db, Truth(onTime));

        // Another reconciler's run holds the lock.
        await using var other = await db.DataSource.OpenConnectionAsync();
        async Task OtherAsync(string function)
        {
            await using var command = new Npgsql.NpgsqlCommand($"SELECT {function}({ClickReconciler.LockKey})", other);
            await command.ExecuteNonQueryAsync();
        }

        await OtherAsync("pg_advisory_lock");

        var run = Reconciler(db, broker).RunAsync(new ReconcileRequest(T0, T0.AddHours(1), null, DryRun: false), null, default);
        var deadline = DateTime.UtcNow.AddMinutes(1);
        while (!run.IsCompleted && DateTime.UtcNow < deadline && await db.ScalarAsync<long>(
                   "SELECT count(*) FROM pg_locks l JOIN pg_database d ON d.oid = l.database WHERE d.datname = current_database() AND l.locktype = 'advisory' AND NOT l.granted") == 0)
        {
            await Task.Delay(50);
        }

        Assert.False(run.IsCompleted, "a run that corrects must wait while another run holds the reconciliation lock");

        // Clicks of the hour reach the log while it waits; the other run ends.
        var meanwhile = Enumerable.Range(0, 4).Select(i => Click(2, T0.AddMinutes(20).AddSeconds(i))).ToList();
        Produce(broker, 4, meanwhile, writtenAt: DateTime.UtcNow);
        await OtherAsync("pg_advisory_unlock");

        var report = await run;
        var truth = Truth(onTime.Concat(meanwhile));
        Assert.Equal(truth.Values.Sum(), report.RawClicks);
        Assert.Equal(Totals(truth), await StoredTotalsAsync(db));
    }

    [Fact]
    public async Task Scheduled_runs_missed_while_no_reconciler_ran_are_made_up_once_however_many_instances_keep_the_schedule()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var clicks = HourOfClicks(90);
        Produce(broker, 4, clicks);
        var truth = Truth(clicks);
        var stored = new Dictionary<(long AdId, DateTime Minute, int Salt), long>(truth);
        var (first, second) = (stored.Keys.First(), stored.Keys.Last());
        stored[first] += 2;
        stored.Remove(second);
        await StoreAsync(db, stored);

        // The schedule has been kept since before T0; then no reconciler ran (a restart, an outage) until now.
        await db.ExecuteAsync("INSERT INTO reconciliation_schedule (schedule, kept_since) VALUES ('all', $1)", T0.AddMinutes(-30));
        var options = new ReconcilerOptions { RetryDelay = TimeSpan.FromSeconds(1) };
        var instances = new[] { Scheduler(db, broker, options), Scheduler(db, broker, options) };
        foreach (var instance in instances)
        {
            await instance.StartAsync(default);
        }

        const string T0Done = "SELECT count(*) FROM reconciliation_runs WHERE schedule = 'hourly' AND range_from = $1 AND range_to = $2 AND status = 'succeeded'";
        var deadline = DateTime.UtcNow.AddMinutes(3);
        while (await db.ScalarAsync<long>(T0Done, T0, T0.AddHours(1)) == 0 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(200);
        }

        foreach (var instance in instances)
        {
            await instance.StopAsync(default);
        }

        Assert.Equal(1L, await db.ScalarAsync<long>(T0Done, T0, T0.AddHours(1)));
        Assert.Equal(Totals(truth), await StoredTotalsAsync(db));
        Assert.Equal(0L, await db.ScalarAsync<long>(
            "SELECT count(*) FROM (SELECT 1 FROM reconciliation_runs WHERE schedule IS NOT NULL GROUP BY schedule, range_from, range_to HAVING count(*) > 1) twice"));
    }
}
