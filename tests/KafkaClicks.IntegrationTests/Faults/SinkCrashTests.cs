using System.Globalization;
using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>The sink process SIGKILLed while minute counts stream in: after a restart the database holds every window's newest count.</summary>
public class SinkCrashTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const int Ads = 300;
    private const int Minutes = 3;
    private const int Rounds = 12;

    [Fact]
    public async Task After_a_kill_and_a_restart_every_window_has_its_newest_count()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await ProcessBroker.StartAsync(new Dictionary<string, string>());
        var bootstrap = broker.BootstrapServers;
        var environment = new Dictionary<string, string>(broker.Environment)
        {
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_Sink__MaxBatchDelay"] = "00:00:00.100",
            ["KAFKACLICKS_Sink__MaxBatchRecords"] = "500",
            ["KAFKACLICKS_Urls"] = "http://127.0.0.1:0",
        };
        var start = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour).AddHours(-1);
        var sink = KafkaClicksProcess.Start("sink #1", environment, "run", "--roles", "sink");
        try
        {
            await sink.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(60));
            using var producer = new ProducerBuilder<string, MinuteCount>(new ProducerConfig { BootstrapServers = bootstrap, EnableIdempotence = true, Acks = Acks.All })
                .SetValueSerializer(new AvroKafkaSerializer<MinuteCount>(ContractCodecs.MinuteCount))
                .Build();
            for (var round = 1; round <= Rounds; round++)
            {
                for (long adId = 1; adId <= Ads; adId++)
                {
                    for (var minute = 0; minute < Minutes; minute++)
                    {
                        producer.Produce(broker.Names.ClicksMinute, new Message<string, MinuteCount>
                        {
                            Key = adId.ToString(CultureInfo.InvariantCulture),
                            Value = new MinuteCount
                            {
                                AdId = adId,
                                Salt = 0,
                                WindowStart = start.AddMinutes(minute),
                                Clicks = round * (adId + minute),
                                Final = round == Rounds,
                                EmittedAt = start.AddMinutes(5).AddSeconds(round),
                            },
                        });
                    }
                }

                producer.Flush(TimeSpan.FromSeconds(10));
                if (round == Rounds / 2)
                {
                    sink.Kill();
                    await sink.DisposeAsync();
                    sink = KafkaClicksProcess.Start("sink #2", environment, "run", "--roles", "sink");
                    await sink.WaitForLineAsync("Now listening on", TimeSpan.FromSeconds(60));
                }

                await Task.Delay(300);
            }

            var deadline = DateTime.UtcNow.AddSeconds(60);
            long finals;
            do
            {
                await Task.Delay(500);
                finals = await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute WHERE final");
            }
            while (finals < Ads * Minutes && DateTime.UtcNow < deadline);

            Assert.Equal(Ads * Minutes, await db.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute"));
            Assert.Equal(Ads * Minutes, finals);
            Assert.Equal(0L, await db.ScalarAsync<long>(
                "SELECT count(*) FROM ad_clicks_minute WHERE clicks <> $1 * (ad_id + extract(epoch FROM minute - $2)::bigint / 60)", (long)Rounds, start));
        }
        finally
        {
            await sink.DisposeAsync();
        }
    }
}
