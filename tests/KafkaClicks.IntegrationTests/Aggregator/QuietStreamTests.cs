using System.Globalization;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.ServiceDefaults;
using static KafkaClicks.IntegrationTests.Infrastructure.ClickRows;

namespace KafkaClicks.IntegrationTests.Aggregator;

/// <summary>
/// When clicks stop (a quiet night, the end of a campaign) no click moves stream time, yet the last minute must still
/// turn final and <c>completeThrough</c> pass it: counts marked partial for good are never billed as final.
/// </summary>
[Trait("Category", "Billing")]
public sealed class QuietStreamTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task When_clicks_stop_the_last_minute_turns_final_and_completeThrough_passes_it()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Aggregator | Role.Sink | Role.Query);
        await host.AddAdvertiserAsync(1, 90);

        // The last clicks of the stream, in the last seconds of the previous minute; then nothing more.
        var now = DateTime.UtcNow;
        var minute = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc).AddMinutes(-1);
        RawClicks.Produce(host.Broker, 8, Enumerable.Range(57, 3).Select(s => RawClicks.Click(90, minute.AddSeconds(s))));

        const string Counts = "SELECT coalesce(sum(clicks) FILTER (WHERE final), 0)::bigint FROM ad_clicks_minute WHERE ad_id = 90 AND minute = $1";
        var deadline = DateTime.UtcNow.AddSeconds(60);
        long final;
        while ((final = await host.Database.ScalarAsync<long>(Counts, minute)) < 3 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
        }

        Assert.Equal(3L, final);
        Assert.Equal(0L, await host.Database.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute WHERE ad_id = 90 AND NOT final"));
        var answer = await GetJsonAsync(host, $"/v1/ads/90/clicks?from={Iso(minute)}&to={Iso(minute.AddMinutes(1))}&granularity=1m", ProductHost.AdminKey);
        Assert.True(answer.GetProperty("completeThrough").GetDateTimeOffset() >= minute.AddMinutes(1),
            $"completeThrough {answer.GetProperty("completeThrough")} does not pass the final minute {minute:O}");
        Assert.Equal(3, answer.GetProperty("total").GetInt64());
    }

    [Fact]
    public async Task An_aggregator_killed_and_restarted_while_its_partitions_are_quiet_finalizes_the_windows_it_held_without_another_click()
    {
        const int RawPartitions = 8;
        await using var db = await postgres.CreateDatabaseAsync();
        var applicationId = "quiet-" + Guid.NewGuid().ToString("N")[..12];
        await using var broker = await ProcessBroker.StartAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_Aggregator__ApplicationId"] = applicationId,
            ["KAFKACLICKS_Kafka__ClicksRawPartitions"] = RawPartitions.ToString(CultureInfo.InvariantCulture),
            ["KAFKACLICKS_Kafka__ClicksMinutePartitions"] = "4",
        });
        var state = Path.Combine(Path.GetTempPath(), "kafkaclicks-quiet-" + Guid.NewGuid().ToString("N"));
        var environment = new Dictionary<string, string>(broker.Environment)
        {
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_Aggregator__EmitInterval"] = "00:00:01",
            ["KAFKACLICKS_Aggregator__Grace"] = "00:00:02",
            ["KAFKACLICKS_Aggregator__CommitInterval"] = "00:00:01",
            ["KAFKACLICKS_Aggregator__StateDirectory"] = state,
            ["KAFKACLICKS_Sink__MaxBatchDelay"] = "00:00:00.100",
            ["KAFKACLICKS_Urls"] = "http://127.0.0.1:0",
        };
        using var probe = new BrokerProbe(broker.BootstrapServers);
        var sink = KafkaClicksProcess.Start("sink", environment, "run", "--roles", "sink");
        var aggregator = KafkaClicksProcess.Start("aggregator #1", environment, "run", "--roles", "aggregator");
        try
        {
            await sink.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(60));
            await aggregator.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(60));

            // Three clicks early in the current minute, then nothing more. The window would close on the wall clock's
            // pace about a minute later; the aggregator is killed as soon as its partial count is stored and its offsets
            // committed, so that no click comes back to it after the restart.
            var now = DateTime.UtcNow;
            var minute = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc);
            RawClicks.Produce(broker.BootstrapServers, broker.Names.ClicksRaw, RawPartitions, Enumerable.Range(1, 3).Select(s => RawClicks.Click(90, minute.AddSeconds(s))));
            const string Stored = "SELECT coalesce(sum(clicks), 0)::bigint, bool_and(final) FROM ad_clicks_minute WHERE ad_id = 90 AND minute = $1";
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while ((await db.ScalarAsync<long>(Stored, minute) < 3 || probe.CommittedSum(broker.Names.Of(applicationId), broker.Names.ClicksRaw, RawPartitions) < 3)
                && DateTime.UtcNow < deadline)
            {
                aggregator.EnsureRunning();
                await Task.Delay(100);
            }

            Assert.Equal(3L, await db.ScalarAsync<long>(Stored, minute));
            Assert.Equal(3L, probe.CommittedSum(broker.Names.Of(applicationId), broker.Names.ClicksRaw, RawPartitions));
            Assert.False(await db.ScalarAsync<bool>("SELECT bool_and(final) FROM ad_clicks_minute WHERE ad_id = 90 AND minute = $1", minute),
                "the window was already final before the kill: the test would prove nothing");
            aggregator.Kill();
            await aggregator.DisposeAsync();

            // Back with the same state and no click to come: the window it held turns final (the restored store's count,
            // nothing lost), and completeThrough passes it, every one of the 8 tasks having reported.
            aggregator = KafkaClicksProcess.Start("aggregator #2", environment, "run", "--roles", "aggregator");
            deadline = DateTime.UtcNow.AddSeconds(150);
            while (!await db.ScalarAsync<bool>("SELECT coalesce(bool_and(final), false) FROM ad_clicks_minute WHERE ad_id = 90 AND minute = $1", minute)
                && DateTime.UtcNow < deadline)
            {
                aggregator.EnsureRunning();
                sink.EnsureRunning();
                await Task.Delay(500);
            }

            Assert.True(await db.ScalarAsync<bool>("SELECT coalesce(bool_and(final), false) FROM ad_clicks_minute WHERE ad_id = 90 AND minute = $1", minute),
                "the window the killed aggregator held never turned final without a new click\n" + aggregator.Output());
            Assert.Equal(3L, await db.ScalarAsync<long>(Stored, minute));
            deadline = DateTime.UtcNow.AddSeconds(30);
            DateTime? through;
            while (((through = await StreamProgress.CompleteThroughAsync(db.DataSource, default)) is null || through < minute.AddMinutes(1)) && DateTime.UtcNow < deadline)
            {
                await Task.Delay(500);
            }

            Assert.True(through >= minute.AddMinutes(1), $"completeThrough {through:O} does not pass the final minute {minute:O}");
        }
        finally
        {
            await aggregator.DisposeAsync();
            await sink.DisposeAsync();
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }
}
