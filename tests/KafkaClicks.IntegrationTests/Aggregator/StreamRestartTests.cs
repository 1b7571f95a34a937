using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Topology;
using RocksDbSharp;

namespace KafkaClicks.IntegrationTests.Aggregator;

/// <summary>
/// A stream thread that dies fenced (a broker stall, exactly-once) stops closing its tasks at the first that throws, so
/// their RocksDB stores stay open in the process; RocksDB refuses to open them again there, and every new stream on the
/// same state folder failed while assigning its partitions, until the role gave up and stopped its process (CI,
/// cluster lane: "doesn't exist and cannot be created for segments impressions" four times, then nothing counted).
/// </summary>
[Trait("Category", "Billing")]
public sealed class StreamRestartTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task A_stream_that_cannot_open_its_state_in_this_process_starts_again_in_a_folder_of_its_own_and_counts_every_click()
    {
        var state = Path.Combine(Path.GetTempPath(), "kafkaclicks-restart-" + Guid.NewGuid().ToString("N"));
        var applicationId = "kc-restart-" + Guid.NewGuid().ToString("N")[..8];
        RocksDb? held = null;
        try
        {
            await using var host = await ProductHost.StartAsync(postgres, Role.Aggregator | Role.Sink, new Dictionary<string, string?>
                {
                    ["Aggregator:StateDirectory"] = state,
                    ["Aggregator:ApplicationId"] = applicationId,
                },
                builder =>
                {
                    // A segment of task 0-0's impression store that this process holds open, as a failed stream leaves it.
                    var segment = Path.Combine(state, KafkaOptions.NamesOf(builder.Configuration).Of(applicationId), "0-0",
                        ClickAggregationTopology.ImpressionStore, ClickAggregationTopology.ImpressionStore + ".0");
                    Directory.CreateDirectory(segment);
                    held = RocksDb.Open(new DbOptions().SetCreateIfMissing(true), segment);
                });
            Assert.NotNull(held);

            var now = DateTime.UtcNow;
            var clicks = Enumerable.Range(0, 40).Select(i => RawClicks.Click(90 + (i % 4), now.AddMilliseconds(-i))).ToList();
            RawClicks.Produce(host.Broker, 8, clicks);

            var deadline = DateTime.UtcNow.AddSeconds(90);
            long counted;
            while ((counted = await host.Database.ScalarAsync<long>("SELECT coalesce(sum(clicks), 0)::bigint FROM ad_clicks_minute")) < clicks.Count
                   && DateTime.UtcNow < deadline)
            {
                await Task.Delay(250);
            }

            Assert.Equal(clicks.Count, counted);
            Assert.True(Directory.Exists(Path.Combine(state, "restart-1")), "the stream did not move to a state folder of its own");
        }
        finally
        {
            held?.Dispose();
            if (Directory.Exists(state))
            {
                Directory.Delete(state, recursive: true);
            }
        }
    }
}
