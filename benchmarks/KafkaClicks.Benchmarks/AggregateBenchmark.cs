using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Topology;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// Preloads raw clicks (default 2,000,000 over 100,000 ads, 5% of the clicks on hot salted ads, 2% repeated
/// impressions) into clicks.raw on the embedded broker, then measures the aggregator role from its start to the
/// last final record on clicks.minute. The baseline, in the same run, is a plain Confluent consumer reading and
/// decoding the same topic.
/// </summary>
public sealed class AggregateBenchmark : IBenchmark
{
    private const int Partitions = 64;
    private const int HotAds = 20;
    private const int Salts = 8;
    private static readonly DateTime Start = DateTime.UtcNow.Date.AddHours(-3);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var clicks = int.Parse(Environment.GetEnvironmentVariable("BENCH_CLICKS") ?? "2000000", CultureInfo.InvariantCulture);
        var ads = int.Parse(Environment.GetEnvironmentVariable("BENCH_ADS") ?? "100000", CultureInfo.InvariantCulture);
        var stateDirectory = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-aggregate-" + Guid.NewGuid().ToString("N"));
        var overrides = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Kafka:BootstrapServers"] = "",
            ["Kafka:ClicksRawPartitions"] = Partitions.ToString(CultureInfo.InvariantCulture),
            ["Aggregator:StateDirectory"] = stateDirectory,
            ["Aggregator:EmitInterval"] = "00:00:01",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration);

        context.Say($"producing {clicks:N0} clicks over {ads:N0} ads to {Partitions} partitions");
        var expected = Produce(broker.BootstrapServers, clicks, ads);
        context.Say($"{expected.Windows:N0} windows, {expected.DistinctImpressions:N0} distinct impressions; baseline consumer first");
        EnsureNothingTruncated(broker.BootstrapServers);

        var baseline = Stopwatch.StartNew();
        var read = ReadAll(broker.BootstrapServers);
        baseline.Stop();
        context.Say($"baseline read {read:N0} in {baseline.Elapsed.TotalSeconds:F1} s; now the aggregator");

        using var finals = new FinalCollector(broker.BootstrapServers, expected.Windows);
        var timer = Stopwatch.StartNew();
        await using var app = KafkaClicksHost.Build(Role.Aggregator, broker, overrides);
        await app.StartAsync();
        var done = await finals.WaitAsync(TimeSpan.FromMinutes(10), context);
        timer.Stop();
        var rss = BenchmarkContext.RssMb();
        await app.StopAsync();
        Directory.Delete(stateDirectory, recursive: true);

        var eventsPerS = clicks / timer.Elapsed.TotalSeconds;
        var baselinePerS = read / baseline.Elapsed.TotalSeconds;
        return new Dictionary<string, object>
        {
            ["benchmark"] = "aggregate",
            ["events"] = clicks,
            ["events_per_s"] = Math.Round(eventsPerS),
            ["baseline_per_s"] = Math.Round(baselinePerS),
            ["ratio"] = Math.Round(eventsPerS / baselinePerS, 3),
            ["windows"] = expected.Windows,
            ["output_records"] = finals.Records,
            ["final_records"] = finals.Finals,
            ["rss_mb"] = Math.Round(rss),
            ["completed"] = done,
            ["correct"] = done && finals.SumOfFinals == expected.DistinctImpressions && finals.Finals == expected.Windows,
            ["sum_of_finals"] = finals.SumOfFinals,
            ["distinct_impressions"] = expected.DistinctImpressions,
        };
    }

    private sealed record Expectation(long Windows, long DistinctImpressions);

    /// <summary>Clicks spread over 20 minutes of event time, then one click per partition far ahead so every window closes.</summary>
    private static Expectation Produce(string bootstrapServers, int count, int ads)
    {
        var random = new Random(11);
        var windows = new HashSet<(long, int, long)>();
        var recent = new ClickEvent[4096];
        long distinct = 0;
        var serializer = new AvroKafkaSerializer<ClickEvent>(ContractCodecs.ClickEvent);
        using var producer = new ProducerBuilder<string, ClickEvent>(new ProducerConfig
            {
                BootstrapServers = bootstrapServers,
                EnableIdempotence = true,
                Acks = Acks.All,
                LingerMs = 20,
                BatchNumMessages = 10_000,
                CompressionType = CompressionType.Lz4,
                QueueBufferingMaxMessages = 1_000_000,
            })
            .SetValueSerializer(serializer)
            .Build();
        for (var i = 0; i < count; i++)
        {
            ClickEvent click;
            if (i > recent.Length && random.NextDouble() < 0.02)
            {
                click = recent[random.Next(recent.Length)];
            }
            else
            {
                var hot = random.NextDouble() < 0.05;
                var adId = hot ? 1 + random.Next(HotAds) : 1 + HotAds + random.Next(ads - HotAds);
                var impression = Guid.CreateVersion7().ToString("N");
                var clickedAt = Start.AddMilliseconds((double)i / count * 20 * 60_000 + random.Next(5_000));
                click = new ClickEvent
                {
                    ImpressionId = impression,
                    AdId = adId,
                    AdvertiserId = adId % 1000,
                    Salt = hot ? ClickPartitioning.SaltFor(impression, Salts) : 0,
                    ClickedAt = clickedAt,
                    ImpressionAt = clickedAt.AddSeconds(-5),
                };
                recent[i % recent.Length] = click;
                distinct++;
                windows.Add((click.AdId, click.Salt, click.ClickedAt.Ticks / TimeSpan.TicksPerMinute));
            }

            Send(producer, click);
        }

        for (var partition = 0; partition < Partitions; partition++)
        {
            // A click per partition an hour later advances every partition's stream time past all windows.
            var adId = 1_000_000_000L + partition;
            while (ClickPartitioning.PartitionFor(adId, 0, Partitions) != partition)
            {
                adId += Partitions;
            }

            var closing = new ClickEvent
            {
                ImpressionId = Guid.CreateVersion7().ToString("N"),
                AdId = adId,
                ClickedAt = Start.AddHours(1),
                ImpressionAt = Start.AddHours(1),
            };
            Send(producer, closing);
        }

        producer.Flush(TimeSpan.FromMinutes(2));
        return new Expectation(windows.Count, distinct);
    }

    private static void Send(IProducer<string, ClickEvent> producer, ClickEvent click)
    {
        var partition = ClickPartitioning.PartitionFor(click.AdId, click.Salt, Partitions);
        while (true)
        {
            try
            {
                producer.Produce(new TopicPartition(Topics.ClicksRaw, partition), new Message<string, ClickEvent> { Key = click.ImpressionId, Value = click });
                return;
            }
            catch (ProduceException<string, ClickEvent> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(50));
            }
        }
    }

    /// <summary>The embedded broker keeps at most 5 MiB per partition: refuse to measure a truncated topic.</summary>
    private static void EnsureNothingTruncated(string bootstrapServers)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "bench-watermarks" }).Build();
        for (var p = 0; p < Partitions; p++)
        {
            var low = consumer.QueryWatermarkOffsets(new TopicPartition(Topics.ClicksRaw, p), TimeSpan.FromSeconds(10)).Low;
            if (low > 0)
            {
                throw new InvalidOperationException($"clicks.raw partition {p} lost its first {low.Value} records to the broker's retention; use fewer clicks");
            }
        }
    }

    private static long ReadAll(string bootstrapServers)
    {
        using var consumer = new ConsumerBuilder<string, ClickEvent>(new ConsumerConfig
            {
                BootstrapServers = bootstrapServers,
                GroupId = "bench-baseline",
                AutoOffsetReset = AutoOffsetReset.Earliest,
                EnableAutoCommit = false,
                EnablePartitionEof = true,
            })
            .SetValueDeserializer(new AvroKafkaDeserializer<ClickEvent>(ContractCodecs.ClickEvent))
            .Build();
        consumer.Assign(Enumerable.Range(0, Partitions).Select(p => new TopicPartitionOffset(Topics.ClicksRaw, p, Offset.Beginning)));
        var remaining = Partitions;
        long read = 0;
        while (remaining > 0)
        {
            var result = consumer.Consume(TimeSpan.FromSeconds(5));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                remaining--;
                continue;
            }

            read++;
        }

        return read;
    }

    /// <summary>Reads clicks.minute until every expected window has its final record.</summary>
    private sealed class FinalCollector : IDisposable
    {
        private readonly IConsumer<string, MinuteCount> _consumer;
        private readonly long _windows;
        private readonly Dictionary<(long, int, DateTime), long> _finals = [];

        public FinalCollector(string bootstrapServers, long windows)
        {
            _windows = windows;
            _consumer = new ConsumerBuilder<string, MinuteCount>(new ConsumerConfig
                {
                    BootstrapServers = bootstrapServers,
                    GroupId = "bench-finals-" + Guid.NewGuid().ToString("N"),
                    AutoOffsetReset = AutoOffsetReset.Earliest,
                    EnableAutoCommit = false,
                })
                .SetValueDeserializer(new AvroKafkaDeserializer<MinuteCount>(ContractCodecs.MinuteCount))
                .Build();
            _consumer.Subscribe(Topics.ClicksMinute);
        }

        public long Records { get; private set; }

        public long Finals => _finals.Count;

        public long SumOfFinals => _finals.Where(f => f.Key.Item1 < 1_000_000_000L).Sum(f => f.Value);

        public Task<bool> WaitAsync(TimeSpan timeout, BenchmarkContext context) => Task.Run(() =>
        {
            var deadline = Stopwatch.StartNew();
            var lastReport = Stopwatch.StartNew();
            while (deadline.Elapsed < timeout)
            {
                var result = _consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result is not null)
                {
                    Records++;
                    var count = result.Message.Value;
                    if (count.Final && count.AdId < 1_000_000_000L)
                    {
                        _finals[(count.AdId, count.Salt, count.WindowStart)] = count.Clicks;
                    }
                }

                if (_finals.Count >= _windows)
                {
                    return true;
                }

                if (lastReport.Elapsed > TimeSpan.FromSeconds(5))
                {
                    context.Say($"  {Records:N0} records on clicks.minute, {_finals.Count:N0} of {_windows:N0} windows final");
                    lastReport.Restart();
                }
            }

            return false;
        });

        public void Dispose()
        {
            _consumer.Close();
            _consumer.Dispose();
        }
    }
}
