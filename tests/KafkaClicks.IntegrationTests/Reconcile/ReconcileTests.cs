using System.Security.Cryptography;
using System.Text.Json;
using Confluent.Kafka;
using KafkaClicks.Broker;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using static KafkaClicks.IntegrationTests.Infrastructure.RawClicks;

namespace KafkaClicks.IntegrationTests.Reconcile;

/// <summary>Recount the raw log, correct the database, prove it: real PostgreSQL, embedded broker.</summary>
public class ReconcileTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly DateTime T0 = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour).AddHours(-3);

    /// <summary>The product's CLI pointed at this test's broker (and its names) and database.</summary>
    internal static Dictionary<string, string> CliEnvironment(BrokerHandle broker, TestDatabase? db = null)
    {
        var environment = new Dictionary<string, string>
        {
            ["KAFKACLICKS_Kafka__BootstrapServers"] = broker.BootstrapServers,
            ["KAFKACLICKS_Kafka__NamePrefix"] = broker.Names.Prefix,
        };
        if (db is not null)
        {
            environment["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString;
        }

        return environment;
    }

    /// <summary>The raw log of the scenario: 5 ads over 10 minutes, a hot ad with salts, repeated impressions.</summary>
    private static List<ClickEvent> Scenario()
    {
        var random = new Random(3);
        var clicks = new List<ClickEvent>();
        for (var minute = 0; minute < 10; minute++)
        {
            for (long adId = 1; adId <= 4; adId++)
            {
                for (var i = 0; i < 3 + (int)adId; i++)
                {
                    clicks.Add(Click(adId, T0.AddMinutes(minute).AddSeconds(random.Next(60))));
                }
            }

            for (var i = 0; i < 20; i++)
            {
                var impression = Guid.NewGuid().ToString("N");
                clicks.Add(Click(5, T0.AddMinutes(minute).AddSeconds(random.Next(60)), ClickPartitioning.SaltFor(impression, 4), impression));
            }
        }

        // Repeated impressions (a user clicking twice): counted once.
        clicks.AddRange(clicks.Take(15).Select(c => Click(c.AdId, c.ClickedAt.AddSeconds(1) < T0.AddMinutes(10) ? c.ClickedAt.AddSeconds(1) : c.ClickedAt, c.Salt, c.ImpressionId)).ToList());
        return clicks;
    }

    internal static Dictionary<(long AdId, DateTime Minute, int Salt), long> Truth(IEnumerable<ClickEvent> clicks)
    {
        var seen = new HashSet<string>();
        var truth = new Dictionary<(long, DateTime, int), long>();
        foreach (var click in clicks.Where(c => seen.Add(c.ImpressionId)))
        {
            var key = (click.AdId, new DateTime(click.ClickedAt.Ticks - (click.ClickedAt.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc), click.Salt);
            truth[key] = truth.GetValueOrDefault(key) + 1;
        }

        return truth;
    }

    internal static async Task StoreAsync(TestDatabase db, IEnumerable<KeyValuePair<(long AdId, DateTime Minute, int Salt), long>> rows)
    {
        foreach (var ((adId, minute, salt), clicks) in rows)
        {
            await db.ExecuteAsync(
                "INSERT INTO ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at) VALUES ($1, $2, $3, $4, true, $5)",
                adId, minute, (short)salt, clicks, minute.AddMinutes(2));
        }
    }

    internal static async Task<Dictionary<(long, DateTime), long>> StoredTotalsAsync(TestDatabase db)
    {
        var totals = new Dictionary<(long, DateTime), long>();
        await using var command = db.DataSource.CreateCommand("SELECT ad_id, minute, sum(clicks)::bigint FROM ad_clicks_minute GROUP BY 1, 2 HAVING sum(clicks) > 0");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            totals[(reader.GetInt64(0), DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc))] = reader.GetInt64(2);
        }

        return totals;
    }

    /// <summary>The clicks of T0's hour in the hourly rollup.</summary>
    private static Task<long> HourlySumAsync(TestDatabase db) =>
        db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_hourly WHERE hour >= $1 AND hour < $2", T0, T0.AddHours(1));

    /// <summary>The clicks of T0's day in the daily rollup.</summary>
    private static Task<long> DailySumAsync(TestDatabase db) => db.ScalarAsync<long>("SELECT sum(clicks)::bigint FROM ad_clicks_daily WHERE day = $1", T0.Date);

    internal static Dictionary<(long, DateTime), long> Totals(Dictionary<(long AdId, DateTime Minute, int Salt), long> rows) =>
        rows.GroupBy(r => (r.Key.AdId, r.Key.Minute)).ToDictionary(g => g.Key, g => g.Sum(r => r.Value));

    /// <param name="impressionsInMemory">
    /// Null: the default, the whole recount in memory; 20: it spills into 22 groups of ads, the database's rows with it,
    /// and is compared and corrected group by group.
    /// </param>
    [Theory]
    [InlineData(null)]
    [InlineData(20)]
    public async Task Finds_and_fixes_exactly_the_wrong_windows_a_dry_run_changes_nothing_and_a_second_run_finds_nothing(int? impressionsInMemory)
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var clicks = Scenario();
        Produce(broker, 4, clicks);
        var truth = Truth(clicks);

        var stored = new Dictionary<(long AdId, DateTime Minute, int Salt), long>(truth);
        stored[(1, T0, 0)] += 3;                      // too high
        stored[(2, T0.AddMinutes(1), 0)] -= 2;        // too low
        stored.Remove((3, T0.AddMinutes(2), 0));      // missing window
        stored[(9, T0.AddMinutes(4), 0)] = 7;         // extra window: no such clicks in the log
        var hotSalt = stored.Keys.First(k => k.AdId == 5 && k.Minute == T0.AddMinutes(6) && k.Salt != 0);
        stored[hotSalt] += 1;                         // one salt of the hot ad too high
        await StoreAsync(db, stored);

        // The rollups as the sink's refresh job leaves them: summing the wrong minutes.
        await db.RefreshRollupsAsync(T0, T0.AddMinutes(10));
        Assert.Equal(stored.Values.Sum(), await HourlySumAsync(db));

        var counter = Counter(broker, TimeSpan.FromMinutes(5), impressionsInMemory: impressionsInMemory);
        using (var recount = counter.Open(T0, T0.AddMinutes(10), null, toLogEnd: true))
        {
            Assert.Equal(impressionsInMemory is null ? 1 : 22, recount.AdGroups);
        }

        var reconciler = new ClickReconciler(db.DataSource, counter);
        var request = new ReconcileRequest(T0, T0.AddMinutes(10), null, DryRun: true);

        var dry = await reconciler.RunAsync(request, null, default);
        var wrong = new[] { (1L, T0), (2L, T0.AddMinutes(1)), (3L, T0.AddMinutes(2)), (9L, T0.AddMinutes(4)), (5L, T0.AddMinutes(6)) };
        Assert.Equal(wrong.Order(), dry.LargestDifferences.Select(d => (d.AdId, d.Minute)).Order());
        Assert.Equal(0, dry.WindowsCorrected);
        Assert.Equal(Totals(stored), await StoredTotalsAsync(db));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM reconciliation_runs"));
        Assert.Equal(truth.Values.Sum(), dry.RawClicks);
        Assert.Equal(clicks.Count, dry.EventsRead);

        var fixedRun = await reconciler.RunAsync(request with { DryRun = false }, null, default);
        Assert.Equal("succeeded", fixedRun.Status);
        Assert.Equal(5, fixedRun.WindowsCorrected);
        Assert.Equal(Totals(truth), await StoredTotalsAsync(db));
        Assert.NotNull(fixedRun.RunId);
        Assert.Equal(5L, await db.ScalarAsync<long>("SELECT windows_corrected FROM reconciliation_runs WHERE run_id = $1", fixedRun.RunId!.Value));
        Assert.Equal(truth.Values.Sum(), await HourlySumAsync(db));
        Assert.Equal(truth.Values.Sum(), await DailySumAsync(db));

        var again = await reconciler.RunAsync(request with { DryRun = false }, null, default);
        Assert.Equal(0, again.WindowsCorrected);
        Assert.Empty(again.LargestDifferences);
        Assert.Equal(truth.Values.Sum(), again.DbClicks);
    }

    [Fact]
    public async Task A_repeat_of_a_click_made_just_before_the_range_is_not_counted_in_it()
    {
        await using var broker = await BrokerAsync();
        var impression = Guid.NewGuid().ToString("N");
        Produce(broker, 4, [
            Click(1, T0.AddMinutes(-8), impression: impression),   // counted in the hour before, by the aggregator and by its run
            Click(1, T0.AddSeconds(20), impression: impression),   // the same impression again, Redis having missed it
            Click(2, T0.AddSeconds(30)),
        ]);

        var counts = Counter(broker, TimeSpan.FromMinutes(5)).Count(T0, T0.AddMinutes(10), null, null, default);

        Assert.Equal(1, counts.Clicks);
        Assert.Equal([(2L, T0, 0)], counts.Windows.Keys.Select(k => (k.AdId, k.Minute, k.Salt)));
        Assert.Null(counts.CoveredFrom);
    }

    /// <remarks>
    /// Cluster lane only: the embedded broker cannot look offsets up by time, so a recount there reads whole partitions
    /// and sees the first click however short its look-back.
    /// </remarks>
    [Fact]
    [Trait("Category", "Billing")]
    [Trait("Lane", "cluster")]
    public async Task A_repeat_of_a_click_a_slow_clock_stamped_before_its_impressions_issue_a_lifetime_back_is_not_counted_in_the_range()
    {
        await using var broker = await BrokerAsync();
        var impression = Guid.NewGuid().ToString("N");
        var issuedAt = T0.AddMinutes(-58); // the repeat below comes 59 minutes after it: within the 1 h lifetime
        var first = Click(1, issuedAt.AddMinutes(-4), impression: impression); // the clicking host's clock 4 minutes behind the minting host's
        first.ImpressionAt = issuedAt;
        var repeat = Click(1, T0.AddMinutes(1), impression: impression);
        repeat.ImpressionAt = issuedAt;
        // Written in two batches, so a broker looking offsets up by time can start between them.
        Produce(broker, 4, [first]);
        Produce(broker, 4, [repeat, Click(2, T0.AddSeconds(30))]);

        // The aggregator drops the repeat (both clicks carry the same issue time); the recount must read back a lifetime
        // and the clock tolerance (RawLogCounter.ClockTolerance) to see the first click, written 62 minutes before the range.
        var counts = Counter(broker, TimeSpan.FromMinutes(5)).Count(T0, T0.AddMinutes(10), null, null, default);

        Assert.Equal(1, counts.Clicks);
        Assert.Equal([(2L, T0, 0)], counts.Windows.Keys.Select(k => (k.AdId, k.Minute, k.Salt)));
    }

    [Fact]
    public async Task A_record_that_is_not_a_click_is_skipped_and_counted_not_a_failure_of_the_run()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync(partitions: 1);
        var clicks = Enumerable.Range(0, 20).Select(i => Click(1 + (i % 3), T0.AddSeconds(i * 10))).ToList();
        Produce(broker, 1, clicks.Take(10));
        using (var junk = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = broker.BootstrapServers }).Build())
        {
            junk.Produce(broker.Names.ClicksRaw, new Message<string, byte[]> { Key = "junk", Value = [0xC3, 0x01, 0x02], Timestamp = new Timestamp(T0.AddSeconds(95)) });
            junk.Flush(TimeSpan.FromSeconds(10));
        }

        Produce(broker, 1, clicks.Skip(10));

        var report = await new ClickReconciler(db.DataSource, Counter(broker, TimeSpan.FromMinutes(5)))
            .RunAsync(new ReconcileRequest(T0, T0.AddMinutes(10), null, DryRun: false), null, default);

        Assert.Equal("succeeded", report.Status);
        Assert.Equal(20, report.RawClicks);
        Assert.Equal(1, report.UndecodableRecords);
        Assert.Equal(Totals(Truth(clicks)), await StoredTotalsAsync(db));
    }

    [Fact]
    public async Task A_final_the_aggregator_sends_again_after_a_restart_does_not_undo_a_correction()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        Produce(broker, 4, Enumerable.Range(0, 5).Select(i => Click(1, T0.AddSeconds(i * 10))));
        var writer = new MinuteCountWriter(db.DataSource);
        MinuteCount AggregatorFinal(long adId, long clicks, DateTime emittedAt) => new()
        {
            AdId = adId, Salt = 0, WindowStart = T0, Clicks = clicks, Final = true, EmittedAt = emittedAt,
        };

        // The aggregator missed a click (say it reached clicks.raw late); the reconciler recounts 5. (Its final marks the
        // stream final through T0 + 1 minute, so that is as far as a run may correct.)
        await writer.WriteAsync([new MinuteCountRecord(AggregatorFinal(1, 4, T0.AddMinutes(2)), 0)], default);
        var report = await new ClickReconciler(db.DataSource, Counter(broker, TimeSpan.FromMinutes(5)))
            .RunAsync(new ReconcileRequest(T0, T0.AddMinutes(1), null, DryRun: false), null, default);
        Assert.Equal(1, report.WindowsCorrected);
        Assert.Equal(5L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 1"));

        // Restarted, the aggregator re-emits the windows it rebuilt from its impression store: the same count, by a
        // newer clock. The correction stands; a window never corrected still takes the newer emission.
        await writer.WriteAsync([
            new MinuteCountRecord(AggregatorFinal(1, 4, DateTime.UtcNow), 0),
            new MinuteCountRecord(AggregatorFinal(2, 7, DateTime.UtcNow), 0),
        ], default);
        Assert.Equal(5L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 1"));
        Assert.Equal(7L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 2"));
    }

    [Fact]
    public async Task Corrections_reach_the_rollups_even_when_the_reconciler_dies_before_refreshing_them()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.PauseBackgroundPoliciesAsync();
        await using var broker = await BrokerAsync();
        var clicks = Scenario();
        Produce(broker, 4, clicks);
        var truth = Truth(clicks);
        var stored = new Dictionary<(long AdId, DateTime Minute, int Salt), long>(truth);
        stored[(1, T0, 0)] += 3;
        stored[(2, T0.AddMinutes(1), 0)] -= 2;
        await StoreAsync(db, stored);
        await db.RefreshRollupsAsync(T0, T0.AddMinutes(10));

        // The reconciler's own refresh of the corrected ads fails right after the corrected minutes were committed,
        // as if the process had been killed there: the hourly rollup it recomputes is out of its reach (a table on
        // plain PostgreSQL, a continuous aggregate on TimescaleDB).
        var kind = await db.FlavorAsync() == KafkaClicks.Migrations.StorageFlavor.Timescale ? "MATERIALIZED VIEW" : "TABLE";
        await db.ExecuteAsync($"ALTER {kind} ad_clicks_hourly RENAME TO rollup_moved_away");
        var reconciler = new ClickReconciler(db.DataSource, Counter(broker, TimeSpan.FromMinutes(5)));
        var failure = await Assert.ThrowsAsync<Npgsql.PostgresException>(() => reconciler.RunAsync(new ReconcileRequest(T0, T0.AddMinutes(10), null, DryRun: false), null, default));
        Assert.Equal(Npgsql.PostgresErrorCodes.UndefinedTable, failure.SqlState);
        await db.ExecuteAsync($"ALTER {kind} rollup_moved_away RENAME TO ad_clicks_hourly");
        Assert.Equal(Totals(truth), await StoredTotalsAsync(db));
        Assert.Equal(stored.Values.Sum(), await HourlySumAsync(db));

        // The sink role's refresh job then finds the corrected hour marked and recomputes it.
        await new RollupRefreshJob(db.DataSource, Options.Create(new SinkOptions()), TimeProvider.System, NullLogger<RollupRefreshJob>.Instance).RunOnceAsync(default);
        Assert.Equal(truth.Values.Sum(), await HourlySumAsync(db));
        Assert.Equal(truth.Values.Sum(), await DailySumAsync(db));
        Assert.Equal(0L, await db.ScalarAsync<long>("SELECT count(*) FROM dirty_rollup_hours('-infinity', 'infinity')"));
    }

    [Theory]
    [InlineData(1)]
    [InlineData(8)]
    public async Task An_impression_on_two_partitions_is_counted_once_however_many_readers_share_the_partitions(int readers)
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync(partitions: 8);

        // Ad 5 became hot between two clicks of the same impression: salt 0, then a salt on another partition.
        var salts = Enumerable.Range(1, 7).First(s => ClickPartitioning.PartitionFor(5, s, 8) != ClickPartitioning.PartitionFor(5, 0, 8));
        var clicks = Enumerable.Range(0, 500).Select(i => Click(1 + (i % 7), T0.AddSeconds(i % 600))).ToList();
        clicks.Add(Click(5, T0.AddMinutes(3), salt: 0, impression: "imp-twice"));
        clicks.Add(Click(5, T0.AddMinutes(3).AddSeconds(5), salt: salts, impression: "imp-twice"));
        Produce(broker, 8, clicks);

        var counter = Counter(broker, TimeSpan.FromMinutes(5), readers);
        var counts = counter.Count(T0, T0.AddMinutes(10), null, null, default);

        Assert.Equal(clicks.Count, counts.EventsRead);
        Assert.Equal(clicks.Count - 1, counts.Clicks);

        // Which of the two copies is counted depends on the read order, so its salt does; ad and minute do not.
        Assert.Equal(Totals(Truth(clicks)), Totals(counts.Windows));
    }

    [Fact]
    public async Task One_ad_only_touches_that_ad()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var clicks = Scenario();
        Produce(broker, 4, clicks);
        var truth = Truth(clicks);
        var stored = truth.ToDictionary(t => t.Key, t => t.Value + (t.Key.Salt == 0 && t.Key.AdId is 1 or 2 ? 1 : 0));
        await StoreAsync(db, stored);

        var report = await new ClickReconciler(db.DataSource, Counter(broker, TimeSpan.FromMinutes(5)))
            .RunAsync(new ReconcileRequest(T0, T0.AddMinutes(10), 2, false), null, default);

        Assert.Equal(10, report.WindowsCorrected);
        var totals = await StoredTotalsAsync(db);
        Assert.All(totals.Where(t => t.Key.Item1 == 2), t => Assert.Equal(Totals(truth)[t.Key], t.Value));
        Assert.All(totals.Where(t => t.Key.Item1 == 1), t => Assert.Equal(Totals(truth)[t.Key] + 1, t.Value));
    }

    [Fact]
    public async Task A_range_whose_start_the_log_no_longer_holds_is_reported_and_that_part_is_not_corrected()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync(partitions: 1);

        // The embedded broker keeps 5 MiB per partition: 4,000 clicks of ~2 KiB (incompressible) push the oldest out.
        var padding = Convert.ToBase64String(RandomNumberGenerator.GetBytes(1536));
        var clicks = Enumerable.Range(0, 4000).Select(i => Click(1, T0.AddMilliseconds(i * 150), padding: padding)).ToList();
        foreach (var chunk in clicks.Chunk(200))
        {
            Produce(broker, 1, chunk, compress: false);
        }

        if (broker.Embedded is null)
        {
            // A Kafka cluster keeps what its retention says (days): retention's deletion of the oldest records is done here.
            using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
            await admin.DeleteRecordsAsync([new TopicPartitionOffset(broker.Names.ClicksRaw, 0, 1000)]);
        }

        await StoreAsync(db, [new((1, T0, 0), 1)]);
        var report = await new ClickReconciler(db.DataSource, Counter(broker, TimeSpan.Zero))
            .RunAsync(new ReconcileRequest(T0, T0.AddMinutes(10), null, false), null, default);

        Assert.Equal("partial", report.Status);
        Assert.Equal(T0, report.UncoveredFrom);
        Assert.NotNull(report.UncoveredTo);
        Assert.True(report.UncoveredTo > T0, "the lost start of the range must be reported");
        Assert.Equal(1L, await db.ScalarAsync<long>("SELECT clicks FROM ad_clicks_minute WHERE ad_id = 1 AND minute = $1", T0));
        Assert.All(report.LargestDifferences, d => Assert.True(d.Minute >= report.UncoveredTo));
        Assert.Equal("partial", await db.ScalarAsync<string>("SELECT status FROM reconciliation_runs WHERE run_id = $1", report.RunId!.Value));
    }

    [Fact]
    public async Task The_command_line_reports_as_json_and_exits_with_clear_codes()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var clicks = Scenario();
        Produce(broker, 4, clicks);
        var environment = CliEnvironment(broker, db);

        var (code, output, _) = await CliRunner.RunAsync(environment, "reconcile", "--from", T0.ToString("O"), "--to", T0.AddMinutes(10).ToString("O"), "--json");
        Assert.Equal(0, code);
        using (var json = JsonDocument.Parse(output))
        {
            Assert.Equal(Truth(clicks).Values.Sum(), json.RootElement.GetProperty("rawClicks").GetInt64());
            Assert.Equal(50, json.RootElement.GetProperty("windowsCorrected").GetInt64());
        }

        var (runsCode, runsOutput, _) = await CliRunner.RunAsync(environment, "runs", "--last", "5", "--json");
        Assert.Equal(0, runsCode);
        Assert.Single(runsOutput.Split('\n', StringSplitOptions.RemoveEmptyEntries));

        foreach (var args in new[]
        {
            new[] { "reconcile", "--from", "yesterday", "--to", "2026-01-01T00:00:00Z" },
            ["reconcile", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"],
            ["reconcile", "--to", "2026-01-01T00:00:00Z"],
            ["runs", "--last", "0"],
        })
        {
            var (badCode, _, error) = await CliRunner.RunAsync(environment, args);
            Assert.Equal(2, badCode);
            Assert.StartsWith("kafkaclicks: ", error, StringComparison.Ordinal);
            Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        }
    }

    [Fact]
    public async Task A_scheduled_run_corrects_and_alerts_only_on_windows_past_the_threshold()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await BrokerAsync();
        var clicks = Scenario();
        Produce(broker, 4, clicks);
        var stored = new Dictionary<(long AdId, DateTime Minute, int Salt), long>(Truth(clicks));
        stored[(1, T0, 0)] += 5;
        stored[(2, T0.AddMinutes(3), 0)] += 1;
        await StoreAsync(db, stored);
        long alerts = 0, corrected = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Meter.Name == "KafkaClicks.Reconciler")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((instrument, value, _, _) =>
        {
            if (instrument.Name == "kafkaclicks.reconciler.alerts")
            {
                Interlocked.Add(ref alerts, value);
            }
            else if (instrument.Name == "kafkaclicks.reconciler.windows_corrected")
            {
                Interlocked.Add(ref corrected, value);
            }
        });
        listener.Start();
        var scheduler = new ReconciliationScheduler(
            new ClickReconciler(db.DataSource, Counter(broker, TimeSpan.FromMinutes(5))), db.DataSource,
            Microsoft.Extensions.Options.Options.Create(new ReconcilerOptions { AlertThreshold = 2 }),
            TimeProvider.System, Microsoft.Extensions.Logging.Abstractions.NullLogger<ReconciliationScheduler>.Instance);

        var report = await scheduler.RunAsync(T0, T0.AddMinutes(10), default);

        Assert.Equal(2, report.WindowsCorrected);
        Assert.Equal(2, Interlocked.Read(ref corrected));
        Assert.Equal(1, Interlocked.Read(ref alerts));
        Assert.Equal(Totals(Truth(clicks)), await StoredTotalsAsync(db));
    }

    [Fact]
    public async Task Replay_topics_and_lag_work_from_the_command_line()
    {
        await using var broker = await BrokerAsync();
        var clicks = Scenario();
        Produce(broker, 4, clicks);
        var environment = CliEnvironment(broker);

        var (code, output, _) = await CliRunner.RunAsync(environment, "replay", "--topic", broker.Names.ClicksRaw, "--from", T0.ToString("O"),
            "--to", T0.AddMinutes(5).ToString("O"), "--to-topic", broker.Names.ClicksLate, "--rate", "100000");
        Assert.Equal(0, code);
        var expected = clicks.Count(c => c.ClickedAt >= T0 && c.ClickedAt < T0.AddMinutes(5));
        Assert.Contains($"replayed {expected:N0} records", output, StringComparison.Ordinal);
        var late = TopicReader.ReadClicks(broker.BootstrapServers, broker.Names.ClicksLate);
        Assert.Equal(expected, late.Count);
        Assert.All(late, r => Assert.Equal(r.Message.Key, r.Message.Value.ImpressionId));

        var (listCode, list, _) = await CliRunner.RunAsync(environment, "topics", "list", "--json");
        Assert.Equal(0, listCode);
        using (var json = JsonDocument.Parse(list))
        {
            var raw = json.RootElement.EnumerateArray().Single(t => t.GetProperty("topic").GetString() == broker.Names.ClicksRaw);
            Assert.Equal(4, raw.GetProperty("partitions").GetInt32());
            Assert.Equal(clicks.Count, raw.GetProperty("messages").GetInt64());
        }

        var (describeCode, describe, _) = await CliRunner.RunAsync(environment, "topics", "describe", broker.Names.ClicksRaw, "--json");
        Assert.Equal(0, describeCode);
        using (var json = JsonDocument.Parse(describe))
        {
            Assert.Equal(clicks.Count, json.RootElement.EnumerateArray().Sum(p => p.GetProperty("messages").GetInt64()));
        }

        var lagGroup = broker.Names.Of("lag-test");
        using (var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = lagGroup }).Build())
        {
            consumer.Commit([new TopicPartitionOffset(broker.Names.ClicksRaw, 0, 1)]);
        }

        var (lagCode, lag, _) = await CliRunner.RunAsync(environment, "lag", "--group", lagGroup, "--json");
        Assert.Equal(0, lagCode);
        using (var json = JsonDocument.Parse(lag))
        {
            var row = json.RootElement.EnumerateArray().Single();
            Assert.Equal(1, row.GetProperty("committed").GetInt64());
            Assert.Equal(row.GetProperty("high").GetInt64() - 1, row.GetProperty("lag").GetInt64());
        }

        var (missingCode, _, missing) = await CliRunner.RunAsync(environment, "topics", "describe", "no.such.topic");
        Assert.Equal(1, missingCode);
        Assert.Contains("no topic 'no.such.topic'", missing, StringComparison.Ordinal);
    }
}
