using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaClicks.Aggregator;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Topology;
using Microsoft.Extensions.Configuration;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.SerDes;

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
    private static readonly DateTime Start = DateTime.UtcNow.Date.AddHours(-3);

    public async Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context)
    {
        var clicks = int.Parse(Environment.GetEnvironmentVariable("BENCH_CLICKS") ?? "2000000", CultureInfo.InvariantCulture);
        var ads = int.Parse(Environment.GetEnvironmentVariable("BENCH_ADS") ?? "100000", CultureInfo.InvariantCulture);
        // The product's emit interval unless BENCH_EMIT_INTERVAL (seconds) says otherwise. Finals leave with the click
        // that closes their window, so the run does not wait for a punctuation at its end.
        var emitInterval = TimeSpan.FromSeconds(double.Parse(
            Environment.GetEnvironmentVariable("BENCH_EMIT_INTERVAL") ?? new AggregationOptions().EmitInterval.TotalSeconds.ToString(CultureInfo.InvariantCulture),
            CultureInfo.InvariantCulture));
        var stateDirectory = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-aggregate-" + Guid.NewGuid().ToString("N"));
        var overrides = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["Kafka:BootstrapServers"] = "",
            ["Kafka:ClicksRawPartitions"] = Partitions.ToString(CultureInfo.InvariantCulture),
            ["Aggregator:StateDirectory"] = stateDirectory,
            ["Aggregator:EmitInterval"] = emitInterval.ToString("c", CultureInfo.InvariantCulture),
            ["Logging:LogLevel:Default"] = "Warning",
        };
        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.Aggregator);

        context.Say($"producing {clicks:N0} clicks over {ads:N0} ads to {Partitions} partitions");
        var expected = RawClickLoad.Produce(broker.BootstrapServers, Partitions, clicks, ads, Start);
        context.Say($"{expected.Windows:N0} windows, {expected.DistinctImpressions:N0} distinct impressions; baseline consumer first");
        RawClickLoad.EnsureNothingTruncated(broker.BootstrapServers, Partitions);

        var streamThreads = configuration[$"{AggregationOptions.Section}:ApplicationId"] ?? new AggregationOptions().ApplicationId;
        var baselineCpu = BenchmarkContext.CpuSeconds(streamThreads).Process;
        var baseline = Stopwatch.StartNew();
        var read = RawClickLoad.ReadAll(broker.BootstrapServers, Partitions);
        baseline.Stop();
        baselineCpu = BenchmarkContext.CpuSeconds(streamThreads).Process - baselineCpu;
        context.Say($"baseline read {read:N0} in {baseline.Elapsed.TotalSeconds:F1} s; now Streamiz alone");
        var floorPerS = await StreamizFloorAsync(configuration, broker.BootstrapServers, read);
        context.Say($"Streamiz alone: {floorPerS:N0} events/s; now the aggregator");

        using var finals = new FinalCollector(broker.BootstrapServers, expected.Windows);
        var timer = Stopwatch.StartNew();
        var cpuBefore = BenchmarkContext.CpuSeconds(streamThreads);
        await using var app = KafkaClicksHost.Build(Role.Aggregator, broker, overrides);
        await app.StartAsync();
        var done = await finals.WaitAsync(TimeSpan.FromMinutes(10), context);
        timer.Stop();
        var cpuAfter = BenchmarkContext.CpuSeconds(streamThreads); // before the stop ends the stream threads
        var rss = BenchmarkContext.RssMb();
        await app.StopAsync();

        // The impression store on disk once the stream has stopped (memtables flushed): what each counted impression
        // costs, and so what Impressions:Lifetime costs at the brief's peak, whose store holds ImpressionRetention of it.
        var stateBytes = new DirectoryInfo(stateDirectory).EnumerateFiles("*", SearchOption.AllDirectories).Sum(f => f.Length);
        var bytesPerImpression = (double)stateBytes / expected.DistinctImpressions;
        var options = AggregatorTopics.Read(configuration);
        var retention = ClickAggregationTopology.ImpressionRetention(options);
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
            // CPU per event is steadier than the rates on a shared machine: another process taking a core lowers a
            // rate but not the CPU this one spends per event. The process figures include the in-process broker.
            ["streamiz_floor_per_s"] = Math.Round(floorPerS),
            ["ratio_to_streamiz_floor"] = Math.Round(eventsPerS / floorPerS, 3),
            ["cpu_us_per_event"] = Math.Round((cpuAfter.Process - cpuBefore.Process) * 1e6 / clicks, 2),
            ["stream_thread_cpu_us_per_event"] = Math.Round((cpuAfter.Threads - cpuBefore.Threads) * 1e6 / clicks, 2),
            ["baseline_cpu_us_per_event"] = Math.Round(baselineCpu * 1e6 / read, 2),
            ["windows"] = expected.Windows,
            ["output_records"] = finals.Records,
            ["emit_interval_s"] = emitInterval.TotalSeconds,
            ["final_records"] = finals.Finals,
            ["rss_mb"] = Math.Round(rss),
            ["state_bytes"] = stateBytes,
            ["state_bytes_per_impression"] = Math.Round(bytesPerImpression, 1),
            ["impression_lifetime_h"] = options.ImpressionLifetime.TotalHours,
            ["state_retention_h"] = Math.Round(retention.TotalHours, 2),
            ["state_gb_at_10000_per_s"] = Math.Round(bytesPerImpression * 10_000 * retention.TotalSeconds / 1e9, 1),
            ["completed"] = done,
            ["events_in_topic"] = read,
            ["correct"] = done && read == clicks + Partitions && finals.SumOfFinals == expected.DistinctImpressions && finals.Finals == expected.Windows,
            ["wrong_windows"] = finals.Differences(expected.PerWindow).Take(5).ToList(),
            ["sum_of_finals"] = finals.SumOfFinals,
            ["distinct_impressions"] = expected.DistinctImpressions,
        };
    }

    /// <summary>
    /// A second baseline: the most any Streamiz topology can do here. The aggregator's own stream configuration reads
    /// and decodes every click through a Streamiz source and does nothing with it (no store, no output), from start
    /// to the last record, like the aggregator's measurement.
    /// </summary>
    private static async Task<double> StreamizFloorAsync(IConfiguration configuration, string bootstrapServers, long events)
    {
        var stateDirectory = Path.Combine(Path.GetTempPath(), "kafkaclicks-bench-floor-" + Guid.NewGuid().ToString("N"));
        // The aggregator's options as configured (threads, commit interval, guarantee), under an id and folder of its own.
        var options = AggregatorTopics.Read(configuration);
        options.ApplicationId = "bench-streamiz-floor-" + Guid.NewGuid().ToString("N")[..8];
        options.StateDirectory = stateDirectory;
        var config = AggregatorService.CreateStreamConfig(configuration, options);
        config.BootstrapServers = bootstrapServers;
        long seen = 0;
        var builder = new StreamBuilder();
        builder.Stream(Topics.ClicksRaw, new StringSerDes(), new AvroSerDes<ClickEvent>(ContractCodecs.ClickEvent))
            .Foreach((_, _, _) => Interlocked.Increment(ref seen));
        var timer = Stopwatch.StartNew();
        using (var stream = new KafkaStream(builder.Build(), config))
        {
            await stream.StartAsync();
            while (Interlocked.Read(ref seen) < events && timer.Elapsed < TimeSpan.FromMinutes(5))
            {
                await Task.Delay(20);
            }

            timer.Stop();
        }

        if (Directory.Exists(stateDirectory))
        {
            Directory.Delete(stateDirectory, recursive: true);
        }

        return Interlocked.Read(ref seen) == events
            ? events / timer.Elapsed.TotalSeconds
            : throw new InvalidOperationException($"Streamiz alone read {Interlocked.Read(ref seen):N0} of {events:N0} events in 5 minutes");
    }

    /// <summary>Reads clicks.minute until every expected window has its final record.</summary>
    private sealed class FinalCollector : IDisposable
    {
        private readonly IConsumer<string, MinuteCount?> _consumer;
        private readonly long _windows;
        private readonly Dictionary<(long, int, DateTime), long> _finals = [];

        public FinalCollector(string bootstrapServers, long windows)
        {
            _windows = windows;
            _consumer = new ConsumerBuilder<string, MinuteCount?>(new ConsumerConfig
                {
                    BootstrapServers = bootstrapServers,
                    GroupId = "bench-finals-" + Guid.NewGuid().ToString("N"),
                    AutoOffsetReset = AutoOffsetReset.Earliest,
                    EnableAutoCommit = false,
                })
                .SetValueDeserializer(new MinuteCountsOnlyDeserializer())
                .Build();
            _consumer.Subscribe(Topics.ClicksMinute);
        }

        public long Records { get; private set; }

        public long Finals => _finals.Count;

        public long SumOfFinals => _finals.Where(f => f.Key.Item1 < RawClickLoad.ClosingAdIds).Sum(f => f.Value);

        /// <summary>Windows whose final differs from the generated count, as "ad/salt/minute: expected -> final".</summary>
        public IEnumerable<string> Differences(IReadOnlyDictionary<(long AdId, int Salt, DateTime Minute), long> expected) =>
            expected.Where(e => _finals.GetValueOrDefault((e.Key.AdId, e.Key.Salt, e.Key.Minute)) != e.Value)
                .Select(e => $"{e.Key.AdId}/{e.Key.Salt}/{e.Key.Minute:HH:mm}: {e.Value} -> " +
                    (_finals.TryGetValue((e.Key.AdId, e.Key.Salt, e.Key.Minute), out var final) ? $"final {final}" : "no final"))
                .Concat(_finals.Where(f => f.Key.Item1 < RawClickLoad.ClosingAdIds && !expected.ContainsKey(f.Key))
                    .Select(f => $"{f.Key.Item1}/{f.Key.Item2}/{f.Key.Item3:HH:mm}: none expected -> final {f.Value}"));

        public Task<bool> WaitAsync(TimeSpan timeout, BenchmarkContext context) => Task.Run(() =>
        {
            var deadline = Stopwatch.StartNew();
            var lastReport = Stopwatch.StartNew();
            while (deadline.Elapsed < timeout)
            {
                var result = _consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result?.Message.Value is { } count) // null: a progress marker
                {
                    Records++;
                    if (count.Final && count.AdId < RawClickLoad.ClosingAdIds)
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
