using System.Globalization;
using System.Net;
using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Topology;

namespace KafkaClicks.IntegrationTests.Aggregator;

/// <summary>
/// clicks.raw's partition count decides which aggregator task counts an ad. Partitions added while clicks are counted
/// would move ads to other tasks while their earlier clicks are still counted: two tasks counting one window, the newer
/// emission overwriting the other in the sink. The deployment records its count (Kafka:ClicksRawPartitions); while the
/// topic has another, ingest produces nothing (clicks wait in its spool, 302 as in a broker outage) and the aggregator
/// counts nothing, both saying why in /readyz; recording the new count (README's procedure) counts every waiting click once.
/// </summary>
/// <remarks>
/// The cluster lane adds the partitions to the running topic (CreatePartitions). The embedded broker (librdkafka's mock
/// cluster) has no CreatePartitions (neither the request nor a mock API to grow a topic), so there clicks.raw is created
/// with more partitions than the roles record, and the roles start against it.
/// </remarks>
[Trait("Category", "Billing")]
public sealed class PartitionCountChangeTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const int Recorded = 8;
    private const int Grown = 16;
    private static readonly long[] AdIds = [11, 12, 13, 14, 15, 16];

    [Fact]
    public async Task Partitions_added_to_clicks_raw_are_refused_and_reported_and_no_click_is_counted_twice_or_lost()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.ExecuteAsync("INSERT INTO advertisers (advertiser_id, name) VALUES (1, 'partitions')");
        foreach (var adId in AdIds)
        {
            await db.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES ($1, 1, $2)", adId, ProductHost.AdUrl(adId));
        }

        var applicationId = "partitions-" + Guid.NewGuid().ToString("N")[..10];
        var canGrow = TestKafka.OnCluster;
        await using var broker = await ProcessBroker.StartAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_Aggregator__ApplicationId"] = applicationId,
            ["KAFKACLICKS_Kafka__ClicksRawPartitions"] = (canGrow ? Recorded : Grown).ToString(CultureInfo.InvariantCulture),
            ["KAFKACLICKS_Kafka__ClicksMinutePartitions"] = "4",
        });
        var spool = Path.Combine(Path.GetTempPath(), "kafkaclicks-partitions-" + Guid.NewGuid().ToString("N"));
        Dictionary<string, string?> Settings(int recorded) => new()
        {
            ["Kafka:BootstrapServers"] = broker.BootstrapServers,
            ["Kafka:NamePrefix"] = broker.Names.Prefix,
            ["Kafka:ClicksRawPartitions"] = recorded.ToString(CultureInfo.InvariantCulture),
            ["Aggregator:ApplicationId"] = applicationId,
            ["ConnectionStrings:Postgres"] = db.ConnectionString,
            ["Ingest:Spool:Directory"] = spool,
        };

        try
        {
            var expected = AdIds.ToDictionary(ad => ad, _ => 0L);
            var before = new List<(long Ad, DateTime Minute, long Clicks)>();
            var counted = new List<string>();
            var waiting = new List<string>();
            await using (var host = await ProductHost.StartAsync(postgres, Role.Ingest | Role.Aggregator | Role.Sink, Settings(Recorded)))
            {
                if (canGrow)
                {
                    // Counted as usual first, through to final counts.
                    counted.AddRange(await ClickEachAdAsync(host, clicksPerAd: 3, expected));
                    await WaitForFinalTotalsAsync(db, expected);
                    before = await MinuteRowsAsync(db);
                    using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
                    await admin.CreatePartitionsAsync([new PartitionsSpecification { Topic = broker.Names.ClicksRaw, IncreaseTo = Grown }]);
                }

                var reason = $"{broker.Names.ClicksRaw} has {Grown} partitions, but this deployment records {Recorded}";
                var ready = await WaitForReadinessAsync(host, body => body.Contains($"clicks-raw-partitions: Degraded: {reason}", StringComparison.Ordinal)
                    && body.Contains($"aggregator: Unhealthy: not counting: {reason}", StringComparison.Ordinal));
                Assert.Equal(HttpStatusCode.ServiceUnavailable, ready.Status);
                Assert.Equal(1.0, await MetricsScraper.ReadFreshAsync(host.Http, "kafkaclicks_ingest_partition_count_mismatch", "topic", "clicks.raw"));

                // Still answered at once, the user redirected; the click waits in the spool, a repeat of it is not counted.
                waiting.AddRange(await ClickEachAdAsync(host, clicksPerAd: 4, expected));
                foreach (var token in waiting.Take(3))
                {
                    using var repeat = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
                    Assert.Equal(HttpStatusCode.Redirect, repeat.StatusCode);
                }

                // Give the aggregator time it would use to count anything that reached clicks.raw.
                await Task.Delay(TimeSpan.FromSeconds(5));
                var log = TopicReader.ReadClicks(broker.BootstrapServers, broker.Names.ClicksRaw);
                Assert.Equal(counted.Count, log.Count);
                Assert.All(log, r => Assert.Equal(ClickPartitioning.PartitionFor(r.Message.Value.AdId, r.Message.Value.Salt, Recorded), r.Partition.Value));
                Assert.Equal(before, await MinuteRowsAsync(db));
            }

            // README's procedure: the aggregator's changelog grown alike, the new count recorded in every role's configuration.
            if (canGrow)
            {
                using var admin = new AdminClientBuilder(new AdminClientConfig { BootstrapServers = broker.BootstrapServers }).Build();
                var changelog = ClickAggregationTopology.InternalTopics(broker.Names.Of(applicationId), new AggregationOptions(), Grown).Single().Name;
                await admin.CreatePartitionsAsync([new PartitionsSpecification { Topic = changelog, IncreaseTo = Grown }]);
            }

            await using (var host = await ProductHost.StartAsync(postgres, Role.Ingest | Role.Aggregator | Role.Sink, Settings(Grown)))
            {
                await WaitForFinalTotalsAsync(db, expected);
                var rows = await MinuteRowsAsync(db);
                Assert.All(before, row => Assert.Contains(row, rows));
                var log = TopicReader.ReadClicks(broker.BootstrapServers, broker.Names.ClicksRaw);
                Assert.Equal(counted.Count + waiting.Count, log.Count);
                Assert.Equal(0.0, await MetricsScraper.ReadFreshAsync(host.Http, "kafkaclicks_ingest_partition_count_mismatch", "topic", "clicks.raw"));
                var ready = await WaitForReadinessAsync(host, body => body == "Healthy");
                Assert.Equal(HttpStatusCode.OK, ready.Status);
            }
        }
        finally
        {
            if (Directory.Exists(spool))
            {
                Directory.Delete(spool, recursive: true);
            }
        }
    }

    /// <summary>Mints and clicks <paramref name="clicksPerAd"/> impressions of every ad (each answered 302); returns the tokens.</summary>
    private static async Task<List<string>> ClickEachAdAsync(ProductHost host, int clicksPerAd, Dictionary<long, long> expected)
    {
        var tokens = new List<string>();
        foreach (var adId in AdIds)
        {
            for (var i = 0; i < clicksPerAd; i++)
            {
                var token = await host.MintAsync(adId);
                using var response = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
                Assert.Equal(HttpStatusCode.Redirect, response.StatusCode);
                Assert.Equal(ProductHost.AdUrl(adId), response.Headers.Location?.ToString());
                tokens.Add(token);
                expected[adId]++;
            }
        }

        return tokens;
    }

    private static async Task WaitForFinalTotalsAsync(TestDatabase db, Dictionary<long, long> expected)
    {
        const string Totals = "SELECT ad_id, coalesce(sum(clicks) FILTER (WHERE final), 0)::bigint, count(*) FILTER (WHERE NOT final) FROM ad_clicks_minute GROUP BY ad_id";
        var deadline = DateTime.UtcNow.AddSeconds(150);
        Dictionary<long, (long Final, long Open)> totals;
        do
        {
            await Task.Delay(500);
            totals = [];
            await using var command = db.DataSource.CreateCommand(Totals);
            await using var reader = await command.ExecuteReaderAsync();
            while (await reader.ReadAsync())
            {
                totals[reader.GetInt64(0)] = (reader.GetInt64(1), reader.GetInt64(2));
            }
        }
        while (!Settled(totals, expected) && DateTime.UtcNow < deadline);

        Assert.Equal(
            expected.OrderBy(kv => kv.Key).Select(kv => $"{kv.Key}: {kv.Value} final, 0 open"),
            expected.Keys.Order().Select(ad => totals.TryGetValue(ad, out var t) ? $"{ad}: {t.Final} final, {t.Open} open" : $"{ad}: 0 final, 0 open"));
        Assert.Equal(expected.Keys.Order(), totals.Keys.Order());
    }

    private static bool Settled(Dictionary<long, (long Final, long Open)> totals, Dictionary<long, long> expected) =>
        totals.Count == expected.Count && expected.All(kv => totals.TryGetValue(kv.Key, out var t) && t.Final == kv.Value && t.Open == 0);

    private static async Task<List<(long Ad, DateTime Minute, long Clicks)>> MinuteRowsAsync(TestDatabase db)
    {
        var rows = new List<(long, DateTime, long)>();
        await using var command = db.DataSource.CreateCommand("SELECT ad_id, minute, sum(clicks)::bigint FROM ad_clicks_minute GROUP BY ad_id, minute ORDER BY ad_id, minute");
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            rows.Add((reader.GetInt64(0), reader.GetDateTime(1), reader.GetInt64(2)));
        }

        return rows;
    }

    /// <summary>/readyz once its body satisfies <paramref name="wanted"/>, or the last answer after 30 s.</summary>
    private static async Task<(HttpStatusCode Status, string Body)> WaitForReadinessAsync(ProductHost host, Func<string, bool> wanted)
    {
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (true)
        {
            using var response = await host.Http.GetAsync(new Uri("/readyz", UriKind.Relative));
            var body = await response.Content.ReadAsStringAsync();
            if (wanted(body) || DateTime.UtcNow > deadline)
            {
                Assert.True(wanted(body), $"/readyz answered {(int)response.StatusCode}: {body}");
                return (response.StatusCode, body);
            }

            await Task.Delay(250);
        }
    }
}
