using System.Diagnostics;
using System.Globalization;
using KafkaClicks.IntegrationTests.Infrastructure;
using Xunit.Abstractions;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// Production runs several instances of each role: two aggregators share clicks.raw's partitions (one consumer group,
/// state per instance) and two sinks share clicks.minute's. One of each is SIGKILLed mid-stream and not brought back; the
/// survivors take its partitions over (the aggregator restoring the dead one's impression store from the changelog), and
/// every window stored in the database must end final with exactly its distinct impressions.
/// </summary>
[Trait("Category", "Billing")]
public sealed class SharedPartitionsTests(PostgresServer postgres, ITestOutputHelper output) : IClassFixture<PostgresServer>
{
    private const int RawPartitions = 8;
    private const int Ads = 2_000;
    private const int SliceClicks = 30_000;
    private static readonly TimeSpan Overall = TimeSpan.FromMinutes(4);

    [Fact]
    public async Task Two_aggregators_and_two_sinks_share_the_partitions_and_one_of_each_killed_changes_no_count()
    {
        var clock = Stopwatch.StartNew();
        using var deadline = new CancellationTokenSource(Overall);
        await using var db = await postgres.CreateDatabaseAsync();
        var applicationId = "shared-" + Guid.NewGuid().ToString("N")[..12];
        await using var broker = await ProcessBroker.StartAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_Aggregator__ApplicationId"] = applicationId,
            ["KAFKACLICKS_Kafka__ClicksRawPartitions"] = RawPartitions.ToString(CultureInfo.InvariantCulture),
            ["KAFKACLICKS_Kafka__ClicksMinutePartitions"] = "4",
        });
        var environment = new Dictionary<string, string>(broker.Environment)
        {
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_Aggregator__EmitInterval"] = "00:00:01",
            ["KAFKACLICKS_Aggregator__Grace"] = "00:00:30",
            ["KAFKACLICKS_Sink__MaxBatchDelay"] = "00:00:00.100",
            ["KAFKACLICKS_Urls"] = "http://127.0.0.1:0",
        };
        var stateDirectories = new List<string>();
        var processes = new List<KafkaClicksProcess>();
        KafkaClicksProcess Start(string name, string role)
        {
            var own = new Dictionary<string, string>(environment);
            if (role == "aggregator")
            {
                var state = Path.Combine(Path.GetTempPath(), "kafkaclicks-shared-" + Guid.NewGuid().ToString("N"));
                stateDirectories.Add(state);
                own["KAFKACLICKS_Aggregator__StateDirectory"] = state;
            }

            var process = KafkaClicksProcess.Start(name, own, "run", "--roles", role);
            processes.Add(process);
            return process;
        }

        using var scenario = new ClickScenario(broker.BootstrapServers, broker.Names.ClicksRaw, RawPartitions, Ads, 2 * SliceClicks, TimeSpan.FromMinutes(6));
        using var probe = new BrokerProbe(broker.BootstrapServers);
        try
        {
            var aggregator1 = Start("aggregator #1", "aggregator");
            var aggregator2 = Start("aggregator #2", "aggregator");
            var sink1 = Start("sink #1", "sink");
            var sink2 = Start("sink #2", "sink");
            foreach (var process in processes)
            {
                await process.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(60));
            }

            Say(clock, "two aggregators and two sinks running");
            scenario.ProduceSlice(SliceClicks, 10_000, deadline.Token);
            var groupId = broker.Names.Of(applicationId);
            while (probe.CommittedSum(groupId, broker.Names.ClicksRaw, RawPartitions) < SliceClicks / 3)
            {
                aggregator1.EnsureRunning();
                aggregator2.EnsureRunning();
                await Task.Delay(200, deadline.Token);
            }

            aggregator1.Kill();
            sink1.Kill();
            Say(clock, $"SIGKILLed aggregator #1 and sink #1 with {probe.CommittedSum(groupId, broker.Names.ClicksRaw, RawPartitions):N0} offsets committed");
            scenario.ProduceSlice(SliceClicks, 10_000, deadline.Token);
            scenario.ProduceClosingClicks(deadline.Token);
            Say(clock, $"produced {scenario.Produced:N0} clicks, {scenario.DistinctImpressions:N0} distinct impressions in {scenario.Expected.Count:N0} windows");

            Dictionary<WindowKey, (long Clicks, bool Final)> stored;
            do
            {
                aggregator2.EnsureRunning();
                sink2.EnsureRunning();
                await Task.Delay(1000, deadline.Token);
                stored = await StoredAsync(db);
            }
            while (!scenario.Expected.All(e => stored.TryGetValue(e.Key, out var row) && row.Final && row.Clicks == e.Value));

            Say(clock, $"every window stored final and exact; {stored.Count:N0} rows");
            Assert.Equal(scenario.Expected.OrderBy(e => e.Key.ToString()), stored.Select(s => KeyValuePair.Create(s.Key, s.Value.Clicks)).OrderBy(e => e.Key.ToString()));
        }
        catch (OperationCanceledException) when (deadline.IsCancellationRequested)
        {
            var stored = await StoredAsync(db);
            var wrong = scenario.Expected.Where(e => !stored.TryGetValue(e.Key, out var row) || !row.Final || row.Clicks != e.Value).ToList();
            Assert.Fail($"after {Overall}: {wrong.Count:N0} of {scenario.Expected.Count:N0} windows not stored final and exact, e.g. " +
                string.Join("; ", wrong.Take(5).Select(w => $"{w.Key} expected {w.Value}, stored {(stored.TryGetValue(w.Key, out var r) ? r.ToString() : "nothing")}")) +
                "\n" + string.Join("\n", processes.Select(p => p.Output())));
        }
        finally
        {
            foreach (var process in processes)
            {
                await process.DisposeAsync();
            }

            foreach (var state in stateDirectories.Where(Directory.Exists))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }

    private static async Task<Dictionary<WindowKey, (long Clicks, bool Final)>> StoredAsync(TestDatabase db)
    {
        var stored = new Dictionary<WindowKey, (long, bool)>();
        await using var command = db.DataSource.CreateCommand("SELECT ad_id, salt, minute, clicks, final FROM ad_clicks_minute WHERE ad_id < $1");
        command.Parameters.Add(new Npgsql.NpgsqlParameter { Value = ClickScenario.ClosingAdBase });
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            var minute = DateTime.SpecifyKind(reader.GetDateTime(2), DateTimeKind.Utc);
            stored[new WindowKey(reader.GetInt64(0), reader.GetInt16(1), new DateTimeOffset(minute).ToUnixTimeMilliseconds())] = (reader.GetInt64(3), reader.GetBoolean(4));
        }

        return stored;
    }

    private void Say(Stopwatch clock, string message) => output.WriteLine($"[{clock.Elapsed.TotalSeconds,6:F1} s] {message}");
}
