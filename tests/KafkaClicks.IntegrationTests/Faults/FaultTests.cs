using System.Collections.Concurrent;
using System.Net;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// Every role in one process under steady click load while a dependency fails and comes back. Each test ends by
/// checking that what the stream wrote to the database equals the accepted impressions exactly, before any
/// reconciliation, and then that a reconciliation run finds nothing to fix.
/// </summary>
public class FaultTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly long[] Ads = [81, 82, 83, 84];

    [Fact]
    public async Task Redis_stopped_under_load_loses_and_doubles_nothing()
    {
        await using var redis = await PrivateRedis.StartAsync();
        await using var host = await ProductHost.StartAsync(postgres, Role.All, new Dictionary<string, string?>
        {
            ["ConnectionStrings:Redis"] = redis.ConnectionString,
            ["Ingest:DedupeTimeout"] = "00:00:00.200",
        });
        await host.AddAdvertiserAsync(1, Ads);

        var accepted = await LoadAsync(host, TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(4), redis.StopAsync, TimeSpan.FromSeconds(24), redis.StartAgainAsync);

        await AssertCountedExactlyAsync(host, accepted);
    }

    /// <summary>
    /// The 20 s outage is longer than the aggregator's session timeout (6 s), so the group evicts it while it holds
    /// offsets it has not committed yet: it must get its partitions back and count on (see RebalanceSafeClientSupplier;
    /// without it the stream thread stopped polling for good and about 90% of the clicks were never counted).
    /// </summary>
    [Fact]
    public async Task Broker_unreachable_under_load_loses_nothing_thanks_to_the_spool()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.All, new Dictionary<string, string?>
        {
            ["Ingest:Spool:Directory"] = Path.Combine(Path.GetTempPath(), "kafkaclicks-fault-spool", Guid.NewGuid().ToString("N")),
            ["Ingest:Spool:ForwardInterval"] = "00:00:00.250",
            ["Ingest:ProduceTimeout"] = "00:00:00.500",

            // The product's default grace: spooled clicks reach the stream up to the outage's length late, and
            // must still fall inside their windows' grace to be counted by the stream itself.
            ["Aggregator:Grace"] = "00:00:30",
        });
        await host.AddAdvertiserAsync(1, Ads);
        long spooled = 0;
        using var listener = new System.Diagnostics.Metrics.MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "kafkaclicks.ingest.spool.appended")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, _, _) => Interlocked.Add(ref spooled, value));
        listener.Start();

        var accepted = await LoadAsync(host, TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(4),
            () => { TestKafka.SetReachable(host.Broker, false); return Task.CompletedTask; },
            TimeSpan.FromSeconds(24),
            () => { TestKafka.SetReachable(host.Broker, true); return Task.CompletedTask; });

        Assert.True(Interlocked.Read(ref spooled) > 50, $"only {spooled} clicks went through the spool: the broker was not unreachable");
        await AssertCountedExactlyAsync(host, accepted);
    }

    [Fact]
    public async Task PostgreSQL_stopped_under_load_loses_nothing_and_the_sink_catches_up()
    {
        await using var pg = await PrivatePostgres.StartAsync();
        await using (var setup = NpgsqlDataSource.Create(pg.ConnectionString))
        {
            await new DatabaseMigrator(setup, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
            await using var advertiser = setup.CreateCommand("INSERT INTO advertisers (advertiser_id, name) VALUES (1, 'fault')");
            await advertiser.ExecuteNonQueryAsync();
            foreach (var adId in Ads)
            {
                await using var ad = setup.CreateCommand($"INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES ({adId}, 1, '{ProductHost.AdUrl(adId)}')");
                await ad.ExecuteNonQueryAsync();
            }
        }

        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest | Role.Aggregator | Role.Sink, new Dictionary<string, string?>
        {
            ["ConnectionStrings:Postgres"] = pg.ConnectionString,
            ["Sink:MaxRetryDelay"] = "00:00:01",
        });

        // The ads are looked up (and cached) before the database goes away; clicks keep flowing while it is down.
        var accepted = await LoadAsync(host, TimeSpan.FromSeconds(29), TimeSpan.FromSeconds(4), pg.StopServerAsync, TimeSpan.FromSeconds(24), pg.StartServerAsync);

        await using var database = NpgsqlDataSource.Create(pg.ConnectionString);
        await AssertCountedExactlyAsync(host, database, accepted);
    }

    /// <summary>The accepted clicks a fault test needs before its verdict means anything.</summary>
    private const int SubstantialLoad = 500;

    /// <summary>
    /// ~60 clicks/s over the ads for <paramref name="duration"/>, 3% of them repeating an earlier impression; the fault
    /// starts and ends at the given offsets. On a slow host the load goes on after <paramref name="duration"/> (up to three
    /// times it) until <see cref="SubstantialLoad"/> clicks were accepted. Returns the impressions that got a 302 for a
    /// fresh click, per ad.
    /// </summary>
    private static async Task<Dictionary<long, HashSet<string>>> LoadAsync(ProductHost host, TimeSpan duration,
        TimeSpan faultAt, Func<Task> fault, TimeSpan recoverAt, Func<Task> recover)
    {
        var tokens = host.App.Services.GetRequiredService<ImpressionTokens>();
        var accepted = new ConcurrentDictionary<long, ConcurrentDictionary<string, bool>>();
        var refused = 0;
        var clock = System.Diagnostics.Stopwatch.StartNew();
        var faulted = false;
        var recovered = false;
        var acceptedCount = 0;
        bool Loading() => clock.Elapsed < duration || (Volatile.Read(ref acceptedCount) <= SubstantialLoad && clock.Elapsed < 3 * duration);
        var workers = Enumerable.Range(0, 4).Select(async worker =>
        {
            var random = new Random(worker);
            var mine = new List<(long AdId, string Token, string Impression)>();
            while (Loading())
            {
                (long AdId, string Token, string Impression) click;
                if (mine.Count > 10 && random.NextDouble() < 0.03)
                {
                    click = mine[random.Next(mine.Count)];
                }
                else
                {
                    var adId = Ads[random.Next(Ads.Length)];
                    var minted = tokens.Mint(adId);
                    click = (adId, minted.Token, minted.ImpressionId);
                    mine.Add(click);
                }

                using var response = await host.Http.GetAsync(new Uri($"/c/{click.Token}", UriKind.Relative));
                if (response.StatusCode == HttpStatusCode.Redirect)
                {
                    if (accepted.GetOrAdd(click.AdId, _ => new()).TryAdd(click.Impression, true))
                    {
                        Interlocked.Increment(ref acceptedCount);
                    }
                }
                else
                {
                    Interlocked.Increment(ref refused);
                }

                await Task.Delay(60);
            }
        }).ToList();

        while (Loading())
        {
            if (!faulted && clock.Elapsed >= faultAt)
            {
                await fault();
                faulted = true;
            }

            if (!recovered && clock.Elapsed >= recoverAt)
            {
                await recover();
                recovered = true;
            }

            await Task.Delay(100);
        }

        await Task.WhenAll(workers);
        Assert.True(faulted && recovered);
        Assert.Equal(0, refused);
        return accepted.ToDictionary(a => a.Key, a => a.Value.Keys.ToHashSet());
    }

    private static Task AssertCountedExactlyAsync(ProductHost host, Dictionary<long, HashSet<string>> accepted) =>
        AssertCountedExactlyAsync(host, host.Database.DataSource, accepted);

    private static async Task AssertCountedExactlyAsync(ProductHost host, NpgsqlDataSource database, Dictionary<long, HashSet<string>> accepted)
    {
        Assert.True(accepted.Values.Sum(a => a.Count) > SubstantialLoad, "the load must be substantial");
        var expected = accepted.ToDictionary(a => a.Key, a => (long)a.Value.Count);
        Dictionary<long, long> stored;
        // After an outage the stream catches up on the backlog (on a cluster after rejoining its group and, exactly-once,
        // after the broker aborted the transaction the outage cut off). Once on a loaded CI host the counts still
        // differed after the 60 s this used to wait; Explain says where the difference is if they ever do again.
        var deadline = DateTime.UtcNow.AddSeconds(120);
        do
        {
            await Task.Delay(500);
            stored = [];
            await using var command = database.CreateCommand("SELECT ad_id, sum(clicks)::bigint FROM ad_clicks_minute GROUP BY ad_id");
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                stored[reader.GetInt64(0)] = reader.GetInt64(1);
            }
        }
        while (!expected.All(e => stored.GetValueOrDefault(e.Key) == e.Value) && DateTime.UtcNow < deadline);

        // The stream alone, before any reconciliation, counted every accepted impression exactly once.
        if (!expected.OrderBy(e => e.Key).SequenceEqual(stored.OrderBy(e => e.Key)))
        {
            Assert.Fail(Explain(host, accepted, stored));
        }

        var now = DateTime.UtcNow;
        var report = await new ClickReconciler(database, new RawLogCounter(KafkaClientFactory.For(host.Broker.BootstrapServers), TimeSpan.FromMinutes(1), topic: host.Broker.Names.ClicksRaw))
            .RunAsync(new ReconcileRequest(now.AddMinutes(-10), now.AddMinutes(1), null, DryRun: true), null, default);
        Assert.Empty(report.LargestDifferences);
        Assert.Equal(expected.Values.Sum(), report.RawClicks);
    }

    /// <summary>
    /// Why the stored counts differ: per ad, accepted against stored, and where the missing or extra impressions are in
    /// the logs (clicks.raw once, twice or not at all; clicks.late).
    /// </summary>
    private static string Explain(ProductHost host, Dictionary<long, HashSet<string>> accepted, Dictionary<long, long> stored)
    {
        var raw = TopicReader.ReadClicks(host.Broker).GroupBy(r => r.Message.Value.ImpressionId).ToDictionary(g => g.Key, g => g.Count());
        var late = TopicReader.ReadClicks(host.Broker.BootstrapServers, host.Broker.Names.ClicksLate).Select(r => r.Message.Value.ImpressionId).ToHashSet();
        var impressions = accepted.Values.SelectMany(a => a).ToList();
        var lines = accepted.OrderBy(a => a.Key).Select(a => $"ad {a.Key}: accepted {a.Value.Count}, stored {stored.GetValueOrDefault(a.Key)}");
        return "the stream's counts differ from the accepted impressions: " + string.Join("; ", lines)
            + $". clicks.raw holds {raw.Count} distinct impressions in {raw.Values.Sum()} records; of the accepted ones "
            + $"{impressions.Count(i => !raw.ContainsKey(i))} are missing from it and {impressions.Count(i => raw.GetValueOrDefault(i) > 1)} are there more than once; "
            + $"clicks.late holds {late.Count} impressions ({impressions.Count(late.Contains)} of them accepted).";
    }
}
