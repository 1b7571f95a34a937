using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.Globalization;
using Confluent.Kafka;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Sink;

/// <summary>
/// Records on clicks.minute that decode but cannot be stored (from a foreign or broken producer), and records that do
/// not decode at all, among good ones: the sink skips each one, counts it by reason, stores every good row, and keeps
/// committing. Before the checks, one negative count made the database refuse its whole batch, and the sink retried
/// that batch forever, so no count after it was ever stored.
/// </summary>
public class InvalidMinuteCountTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const int Partitions = 2;
    private static readonly DateTime Start = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour).AddMinutes(-10);

    [Fact]
    public async Task Invalid_and_undecodable_records_are_skipped_by_reason_and_every_good_row_is_stored()
    {
        await using var database = await postgres.CreateDatabaseAsync();
        var groupId = "kc-sink-invalid-" + Guid.NewGuid().ToString("N")[..8];
        var overrides = new Dictionary<string, string?>(TestKafka.ForTest().Settings())
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Postgres"] = database.ConnectionString,
            ["Kafka:ClicksMinutePartitions"] = Partitions.ToString(CultureInfo.InvariantCulture),
            ["Sink:GroupId"] = groupId,
            ["Sink:MaxBatchRecords"] = "1000",
            ["Sink:MaxBatchDelay"] = "00:00:00.200",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        var skipped = new ConcurrentDictionary<string, long>();
        using var listener = new MeterListener();
        listener.InstrumentPublished = (instrument, l) =>
        {
            if (instrument.Name == "kafkaclicks.sink.poison_records")
            {
                l.EnableMeasurementEvents(instrument);
            }
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "reason")
                {
                    skipped.AddOrUpdate((string)tag.Value!, value, (_, sum) => sum + value);
                }
            }
        });
        listener.Start();

        await using var broker = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(overrides), Role.Sink);
        await using var app = KafkaClicksHost.Build(Role.Sink, broker, overrides);
        using var producer = new ProducerBuilder<string, MinuteCount>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All })
            .SetValueSerializer(new AvroKafkaSerializer<MinuteCount>(ContractCodecs.MinuteCount))
            .Build();
        using var raw = new ProducerBuilder<string, byte[]>(new ProducerConfig { BootstrapServers = broker.BootstrapServers, Acks = Acks.All }).Build();
        await app.StartAsync();

        // Good rows for ads 1-20 before, between and after the bad records, all in the same batches.
        var expected = new Dictionary<(long Ad, int Salt, DateTime Minute), long>();
        void Good(long ad, int minute)
        {
            var count = Count(ad, 0, Start.AddMinutes(minute), clicks: ad + minute);
            Send(producer, broker.Names.ClicksMinute, count);
            expected[(ad, 0, count.WindowStart)] = count.Clicks;
        }

        for (var ad = 1L; ad <= 10; ad++)
        {
            Good(ad, 0);
        }

        Send(producer, broker.Names.ClicksMinute, Count(101, 0, Start, clicks: -3));
        Send(producer, broker.Names.ClicksMinute, Count(102, 40_000, Start, clicks: 5));
        Send(producer, broker.Names.ClicksMinute, Count(103, -1, Start, clicks: 5));
        Send(producer, broker.Names.ClicksMinute, Count(104, 0, Start.AddSeconds(30), clicks: 5));
        Send(producer, broker.Names.ClicksMinute, Count(105, 0, DateTime.UtcNow.Date.AddDays(3), clicks: 5));
        raw.Produce(broker.Names.ClicksMinute, new Message<string, byte[]> { Key = "106", Value = [0xC3, 0x01, 1, 2, 3] });
        raw.Produce(broker.Names.ClicksMinute, new Message<string, byte[]> { Key = "107", Value = [0x42, 0x42] });
        for (var ad = 11L; ad <= 20; ad++)
        {
            Good(ad, 1);
        }

        Assert.Equal(0, raw.Flush(TimeSpan.FromSeconds(10)));
        Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(10)));

        using var offsets = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = broker.Names.Of(groupId) }).Build();
        var partitions = Enumerable.Range(0, Partitions).Select(p => new TopicPartition(broker.Names.ClicksMinute, p)).ToList();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(30));
        while (!CommittedToEnd(offsets, partitions))
        {
            Assert.False(timeout.IsCancellationRequested, "the sink did not commit past the bad records within 30 s");
            await Task.Delay(200, CancellationToken.None);
        }

        var stored = new Dictionary<(long, int, DateTime), long>();
        await using (var command = database.DataSource.CreateCommand("SELECT ad_id, salt, minute, clicks FROM ad_clicks_minute"))
        await using (var reader = await command.ExecuteReaderAsync())
        {
            while (await reader.ReadAsync())
            {
                stored[(reader.GetInt64(0), reader.GetInt16(1), reader.GetFieldValue<DateTime>(2))] = reader.GetInt64(3);
            }
        }

        Assert.Equal(expected.OrderBy(e => e.Key), stored.OrderBy(e => e.Key));
        Assert.Equal(
            new Dictionary<string, long>
            {
                ["NegativeClicks"] = 1,
                ["SaltOutOfRange"] = 2,
                ["WindowNotOnMinute"] = 1,
                ["WindowInFuture"] = 1,
                ["Truncated"] = 1,
                ["UnknownMagic"] = 1,
            }.OrderBy(e => e.Key),
            skipped.OrderBy(e => e.Key));
        await app.StopAsync();
    }

    private static MinuteCount Count(long ad, int salt, DateTime windowStart, long clicks) => new()
    {
        AdId = ad, Salt = salt, WindowStart = windowStart, Clicks = clicks, Final = false, EmittedAt = DateTime.UtcNow,
    };

    private static void Send(IProducer<string, MinuteCount> producer, string topic, MinuteCount count) =>
        producer.Produce(topic, new Message<string, MinuteCount> { Key = count.AdId.ToString(CultureInfo.InvariantCulture), Value = count });

    private static bool CommittedToEnd(IConsumer<Ignore, Ignore> offsets, List<TopicPartition> partitions) =>
        TestKafka.Committed(offsets, partitions).OrderBy(c => c.Partition.Value).Select(c => Math.Max(0, c.Offset.Value))
            .SequenceEqual(partitions.Select(p => offsets.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(5)).High.Value));
}
