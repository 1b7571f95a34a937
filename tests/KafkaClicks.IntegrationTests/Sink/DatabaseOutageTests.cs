using System.Diagnostics.Metrics;
using Confluent.Kafka;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace KafkaClicks.IntegrationTests.Sink;

/// <summary>
/// The sink role against a private PostgreSQL that is stopped for several seconds mid-stream: nothing is lost, the
/// newest counts win, and the consumer group's committed offsets never cover what is not in the database.
/// </summary>
public class DatabaseOutageTests
{
    private const int Partitions = 4;
    private const int Minutes = 3;
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);
    private static readonly DateTime Start = DateTime.UtcNow.Date.AddHours(DateTime.UtcNow.Hour).AddMinutes(-10);

    /// <param name="maxPollInterval">
    /// When set, the consumer's max.poll.interval.ms, shorter than the outage: the sink, retrying its write, does not
    /// poll for that long, so the group evicts it; it must rejoin and carry on instead of stopping the process.
    /// </param>
    [Theory]
    [InlineData(null)]
    [InlineData(6000)]
    public async Task Database_stopped_and_restarted_mid_stream_loses_nothing_and_commits_only_what_is_stored(int? maxPollInterval)
    {
        await using var postgres = await PrivatePostgres.StartAsync();
        await using (var dataSource = NpgsqlDataSource.Create(postgres.UnpooledConnectionString))
        {
            await new DatabaseMigrator(dataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
        }

        var groupId = "kc-sink-outage-" + Guid.NewGuid().ToString("N")[..8];
        var overrides = new Dictionary<string, string?>(TestKafka.ForTest().Settings())
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Postgres"] = postgres.ConnectionString,
            ["Kafka:ClicksMinutePartitions"] = Partitions.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Sink:GroupId"] = groupId,
            ["Sink:MaxBatchRecords"] = "50",
            ["Sink:MaxBatchDelay"] = "00:00:00.100",
            ["Sink:MaxRetryDelay"] = "00:00:01",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Kafka:Consumer:MaxPollIntervalMs"] = maxPollInterval?.ToString(System.Globalization.CultureInfo.InvariantCulture),
        };
        await using var broker = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(overrides), Role.Sink);
        await using var app = KafkaClicksHost.Build(Role.Sink, broker, overrides);
        using var producer = new ProducerBuilder<string, MinuteCount>(new ProducerConfig
            {
                BootstrapServers = broker.BootstrapServers, EnableIdempotence = true, Acks = Acks.All, LingerMs = 5,
            })
            .SetValueSerializer(new AvroKafkaSerializer<MinuteCount>(ContractCodecs.MinuteCount))
            .Build();
        using var offsets = new ConsumerBuilder<Ignore, Ignore>(new ConsumerConfig { BootstrapServers = broker.BootstrapServers, GroupId = broker.Names.Of(groupId) }).Build();
        var partitions = Enumerable.Range(0, Partitions).Select(p => new TopicPartition(broker.Names.ClicksMinute, p)).ToList();
        using var unavailable = new GaugeReader("KafkaClicks.Sink", "kafkaclicks.sink.db_unavailable");
        await app.StartAsync();

        // Before the outage: 40 ads, partial counts, all stored and committed.
        var expected = new Dictionary<(long Ad, DateTime Minute), (long Clicks, bool Final)>();
        Produce(producer, broker.Names.ClicksMinute, expected, ads: 40, round: 0);
        await EventuallyAsync(() => StoredEqualsAsync(postgres, expected), "pre-outage rows stored");
        await EventuallyAsync(() => Task.FromResult(CommittedEqualsEnd(offsets, partitions)), "pre-outage offsets committed");
        var committedBefore = Committed(offsets, partitions);

        await postgres.StopServerAsync();
        for (var round = 1; round <= 3; round++)
        {
            Produce(producer, broker.Names.ClicksMinute, expected, ads: 40 + (round * 10), round);
            await Task.Delay(TimeSpan.FromSeconds(2));
            Assert.Equal(committedBefore, Committed(offsets, partitions));
            Assert.True(unavailable.Read() >= 1, "db_unavailable should report the outage");
        }

        var end = partitions.Select(p => offsets.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(5)).High.Value).ToList();
        Assert.True(end.Sum() > committedBefore.Sum(), "records were produced during the outage");
        if (maxPollInterval is { } interval)
        {
            await Task.Delay(TimeSpan.FromMilliseconds(interval));
        }

        await postgres.StartServerAsync();
        await EventuallyAsync(() => StoredEqualsAsync(postgres, expected), "every row stored with its newest count after the restart");
        await EventuallyAsync(() => Task.FromResult(CommittedEqualsEnd(offsets, partitions)), "offsets committed after the restart");
        Assert.Equal(70 * Minutes, expected.Count);

        // Still consuming after the outage: a round produced now is stored and committed too.
        Produce(producer, broker.Names.ClicksMinute, expected, ads: 80, round: 4);
        await EventuallyAsync(() => StoredEqualsAsync(postgres, expected), "a round after the outage stored");
        await EventuallyAsync(() => Task.FromResult(CommittedEqualsEnd(offsets, partitions)), "a round after the outage committed");
        Assert.False(app.Lifetime.ApplicationStopping.IsCancellationRequested, "the process kept running");
        await app.StopAsync();
    }

    /// <summary>Round r: every ad's minutes with r+1+ad clicks, emitted r seconds later than the round before; from round 3 on final.</summary>
    private static void Produce(IProducer<string, MinuteCount> producer, string topic, Dictionary<(long, DateTime), (long, bool)> expected, int ads, int round)
    {
        for (var ad = 1L; ad <= ads; ad++)
        {
            for (var m = 0; m < Minutes; m++)
            {
                var minute = Start.AddMinutes(m);
                var count = new MinuteCount
                {
                    AdId = ad, Salt = 0, WindowStart = minute, Clicks = round + 1 + ad, Final = round >= 3, EmittedAt = minute.AddMinutes(1).AddSeconds(round),
                };
                producer.Produce(topic, new Message<string, MinuteCount> { Key = ad.ToString(System.Globalization.CultureInfo.InvariantCulture), Value = count });
                expected[(ad, minute)] = (count.Clicks, count.Final);
            }
        }

        Assert.Equal(0, producer.Flush(TimeSpan.FromSeconds(10)));
    }

    private static async Task<bool> StoredEqualsAsync(PrivatePostgres postgres, Dictionary<(long Ad, DateTime Minute), (long Clicks, bool Final)> expected)
    {
        var stored = new Dictionary<(long, DateTime), (long, bool)>();
        await using var connection = new NpgsqlConnection(postgres.UnpooledConnectionString);
        await connection.OpenAsync();
        await using var command = new NpgsqlCommand("SELECT ad_id, minute, clicks, final FROM ad_clicks_minute", connection);
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            stored[(reader.GetInt64(0), reader.GetFieldValue<DateTime>(1))] = (reader.GetInt64(2), reader.GetBoolean(3));
        }

        return stored.Count == expected.Count && expected.All(e => stored.TryGetValue(e.Key, out var s) && s == e.Value);
    }

    private static List<long> Committed(IConsumer<Ignore, Ignore> offsets, List<TopicPartition> partitions) =>
        [.. TestKafka.Committed(offsets, partitions).OrderBy(c => c.Partition.Value).Select(c => Math.Max(0, c.Offset.Value))];

    private static bool CommittedEqualsEnd(IConsumer<Ignore, Ignore> offsets, List<TopicPartition> partitions) =>
        Committed(offsets, partitions).SequenceEqual(partitions.Select(p => offsets.QueryWatermarkOffsets(p, TimeSpan.FromSeconds(5)).High.Value));

    private static async Task EventuallyAsync(Func<Task<bool>> condition, string what)
    {
        using var timeout = new CancellationTokenSource(Patience);
        while (!await condition())
        {
            if (timeout.IsCancellationRequested)
            {
                Assert.Fail($"timed out waiting for: {what}");
            }

            await Task.Delay(200, CancellationToken.None);
        }
    }

    /// <summary>Reads the current value of one observable gauge of this process.</summary>
    private sealed class GaugeReader : IDisposable
    {
        private readonly MeterListener _listener = new();
        private int _value;

        public GaugeReader(string meter, string instrument)
        {
            _listener.InstrumentPublished = (i, l) =>
            {
                if (i.Meter.Name == meter && i.Name == instrument)
                {
                    l.EnableMeasurementEvents(i);
                }
            };
            _listener.SetMeasurementEventCallback<int>((_, value, _, _) => _value = value);
            _listener.Start();
        }

        public int Read()
        {
            _listener.RecordObservableInstruments();
            return _value;
        }

        public void Dispose() => _listener.Dispose();
    }
}
