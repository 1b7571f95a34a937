using System.CommandLine;
using System.Diagnostics;
using Confluent.Kafka;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.Cli.Commands;

public static class ReplayCommand
{
    public static Command Create()
    {
        var topic = new Option<string>("--topic") { Description = "Topic to read, e.g. clicks.raw.", Required = true };
        var from = new Option<DateTime?>("--from") { Description = "Start of the range by record timestamp (ISO-8601, UTC unless an offset is given).", Required = true, CustomParser = CliValues.Instant };
        var to = new Option<DateTime?>("--to") { Description = "End of the range, exclusive.", Required = true, CustomParser = CliValues.Instant };
        var toTopic = new Option<string>("--to-topic") { Description = "Topic to republish to (must exist).", Required = true };
        var lateness = ReconcileCommand.LatenessOption("for records written out of timestamp order");
        var rate = new Option<int?>("--rate")
        {
            Description = "At most this many records per second (default: as fast as possible).",
            CustomParser = r => CliValues.Number(1, int.MaxValue, "positive")(r),
        };
        var command = new Command("replay",
            "Republish the records of a topic whose timestamps fall in a range to another topic: same keys, values, headers and " +
            "timestamps, same partition number (modulo the target's partition count); the log is read --lateness before and past " +
            "the range for records written out of timestamp order. Shows progress; exits 3 when retention already removed the start of the range.");
        foreach (var option in new Option[] { topic, from, to, toTopic, rate, lateness })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => CliErrors.RunAsync(async () =>
        {
            var (start, end) = (parse.GetValue(from)!.Value, parse.GetValue(to)!.Value);
            if (start >= end)
            {
                return CliErrors.BadArguments("replay", ["--from must be before --to"]);
            }

            var source = parse.GetValue(topic)!;
            var target = parse.GetValue(toTopic)!;
            if (source == target)
            {
                return CliErrors.BadArguments("replay", ["--to-topic must differ from --topic"]);
            }

            var configuration = KafkaClicksHost.LoadConfiguration();
            var kafka = ReconcileCommand.KafkaClients(configuration);
            using var logging = KafkaClicksHost.CreateLoggerFactory(toStandardError: true);
            var logger = logging.CreateLogger(typeof(ReplayCommand));
            var (copied, undelivered, range) = await CliProgress.RunAsync($"replaying {source} to {target}", "records", quiet: false,
                progress => Task.Run(() => Replay(kafka, source, target, start, end, parse.GetValue(lateness), parse.GetValue(rate), logger, progress, ct), ct));
            Console.WriteLine($"replayed {copied:N0} records from {source} to {target}");
            if (undelivered.Count > 0)
            {
                await Console.Error.WriteLineAsync(
                    $"kafkaclicks: {undelivered.Count:N0} of {copied + undelivered.Count:N0} records were not delivered to {target} ({undelivered.FirstError}); " +
                    "run the same replay again once the cause is fixed (the consumers of the target drop what they already have)");
                return CliErrors.Failed;
            }

            if (range.CoveredFrom is { } coveredFrom && coveredFrom > start)
            {
                await Console.Error.WriteLineAsync($"kafkaclicks: the log no longer holds {start:u} .. {coveredFrom:u}; that part was not replayed");
                return ReconcileCommand.Partial;
            }

            return CliErrors.Ok;
        }));
        return command;
    }

    /// <summary>Records the broker refused or never acknowledged, and the first reason given.</summary>
    private sealed class Undelivered
    {
        private long _count;

        public long Count => Interlocked.Read(ref _count);

        public string? FirstError { get; private set; }

        public void Report(DeliveryReport<byte[], byte[]> report)
        {
            if (report.Error.IsError && Interlocked.Increment(ref _count) == 1)
            {
                FirstError = $"{report.Error.Code}: {report.Error.Reason}";
            }
        }
    }

    private static (long Copied, Undelivered Undelivered, LogRange Range) Replay(KafkaClientFactory kafka, string source, string target,
        DateTime from, DateTime to, TimeSpan lateness, int? rate, ILogger logger, IProgress<ReadProgress> progress, CancellationToken cancellationToken)
    {
        // Partition EOF: the loop ends a partition at its end offset or its EOF, whichever it sees first.
        using var consumer = kafka.Consumer<byte[], byte[]>(ConsumerGroups.Replay, logger, config => config.EnablePartitionEof = true).Build();
        using var producer = kafka.Producer<byte[], byte[]>(logger).Build();
        using var admin = new DependentAdminClientBuilder(producer.Handle).Build();
        var targetMetadata = admin.GetMetadata(target, TimeSpan.FromSeconds(15)).Topics.Single();
        if (targetMetadata.Error.IsError || targetMetadata.Partitions.Count == 0)
        {
            throw new KafkaException(targetMetadata.Error.IsError ? targetMetadata.Error : new Error(ErrorCode.UnknownTopicOrPart, $"no topic {target}"));
        }

        var targetPartitions = targetMetadata.Partitions.Count;
        // Records are in write order, not timestamp order: read a margin on both sides and copy those inside the range.
        var range = LogRanges.Plan(consumer, kafka, source, from - lateness, to + lateness, logger);
        var total = range.Partitions.Sum(p => p.End - p.Start);
        var undelivered = new Undelivered();
        progress.Report(new ReadProgress(0, total));
        if (range.Partitions.Count == 0)
        {
            return (0, undelivered, range);
        }

        consumer.Assign(range.Partitions.Select(p => new TopicPartitionOffset(p.Partition, p.Start)));
        var remaining = range.Partitions.ToDictionary(p => p.Partition.Partition.Value, p => p.End);
        long read = 0, copied = 0;
        var clock = Stopwatch.StartNew();
        while (remaining.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var record = consumer.Consume(TimeSpan.FromSeconds(1));
            if (record is null || !remaining.TryGetValue(record.Partition.Value, out var endOffset))
            {
                continue;
            }

            if (record.IsPartitionEOF || record.Offset.Value >= endOffset)
            {
                remaining.Remove(record.Partition.Value);
                continue;
            }

            if (record.Offset.Value == endOffset - 1)
            {
                remaining.Remove(record.Partition.Value);
            }

            read++;
            var at = record.Message.Timestamp.UtcDateTime;
            if (at >= from && at < to)
            {
                if (rate is { } perSecond && copied >= perSecond * clock.Elapsed.TotalSeconds)
                {
                    Thread.Sleep(TimeSpan.FromSeconds((copied / (double)perSecond) - clock.Elapsed.TotalSeconds));
                }

                Produce(producer, new TopicPartition(target, record.Partition.Value % targetPartitions), record.Message, undelivered.Report);
                copied++;
            }

            if (read % 5_000 == 0)
            {
                progress.Report(new ReadProgress(read, total));
            }
        }

        producer.Flush(cancellationToken);
        progress.Report(new ReadProgress(total, total));
        return (copied - undelivered.Count, undelivered, range);
    }

    private static void Produce(IProducer<byte[], byte[]> producer, TopicPartition partition, Message<byte[], byte[]> message,
        Action<DeliveryReport<byte[], byte[]>> delivered)
    {
        while (true)
        {
            try
            {
                producer.Produce(partition, message, delivered);
                return;
            }
            catch (ProduceException<byte[], byte[]> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(50));
            }
        }
    }
}
