using System.CommandLine;
using System.Text.Json;
using Confluent.Kafka;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Sink;
using KafkaClicks.Topology;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Spectre.Console;

namespace KafkaClicks.Cli.Commands;

/// <summary>`kafkaclicks topics list|describe` and `kafkaclicks lag`: what is on the cluster and how far consumers are behind.</summary>
public static class KafkaAdminCommands
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(15);

    public static Command Topics()
    {
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var list = new Command("list", "Topics with their partition counts and message counts (high minus low watermark).");
        list.Options.Add(json);
        list.SetAction((parse, _) => CliErrors.RunAsync(() => WithLogger(logger => ListTopics(parse.GetValue(json), logger))));

        var name = new Argument<string>("topic") { Description = "Topic name, e.g. clicks.raw." };
        var describe = new Command("describe", "Per partition: leader, low and high watermarks, messages.");
        describe.Arguments.Add(name);
        describe.Options.Add(json);
        describe.SetAction((parse, _) => CliErrors.RunAsync(() => WithLogger(logger => DescribeTopic(parse.GetValue(name)!, parse.GetValue(json), logger))));

        var topics = new Command("topics", "Inspect the cluster's topics.");
        topics.Subcommands.Add(list);
        topics.Subcommands.Add(describe);
        return topics;
    }

    public static Command Lag()
    {
        var group = new Option<string[]>("--group") { Description = "Consumer group(s); default: the sink's group and the aggregator's application id.", AllowMultipleArgumentsPerToken = true };
        group.Validators.Add(result =>
        {
            if (result.Tokens.FirstOrDefault(t => string.IsNullOrWhiteSpace(t.Value)) is { } blank)
            {
                result.AddError($"--group: '{blank.Value}' is not a consumer group id");
            }
        });
        var json = new Option<bool>("--json") { Description = "Print JSON." };
        var lag = new Command("lag", "Committed offsets and lag per partition for consumer groups.");
        lag.Options.Add(group);
        lag.Options.Add(json);
        lag.SetAction((parse, _) => CliErrors.RunAsync(() => WithLogger(logger =>
        {
            var configuration = KafkaClicksHost.LoadConfiguration();
            var groups = parse.GetValue(group) is { Length: > 0 } given ? given : DefaultGroups(configuration);
            return ShowLag(configuration, groups, parse.GetValue(json), logger);
        })));
        return lag;
    }

    private static string[] DefaultGroups(IConfiguration configuration) =>
    [
        KafkaOptions.NamesOf(configuration).Of(configuration["Sink:GroupId"] ?? new SinkOptions().GroupId),
        KafkaOptions.NamesOf(configuration).Of(configuration[$"{AggregationOptions.Section}:ApplicationId"] ?? new AggregationOptions().ApplicationId),
    ];

    /// <summary>Runs a command with a logger for its clients' librdkafka lines (on stderr: stdout is the command's result).</summary>
    private static Task<int> WithLogger(Func<ILogger, int> command)
    {
        using var logging = KafkaClicksHost.CreateLoggerFactory(toStandardError: true);
        return Task.FromResult(command(logging.CreateLogger(typeof(KafkaAdminCommands))));
    }

    private static IConsumer<byte[], byte[]> Consumer(IConfiguration configuration, string groupId, ILogger logger) =>
        ReconcileCommand.KafkaClients(configuration).Consumer<byte[], byte[]>(groupId, logger).Build();

    private static int ListTopics(bool json, ILogger logger)
    {
        var configuration = KafkaClicksHost.LoadConfiguration();
        using var consumer = Consumer(configuration, ConsumerGroups.Cli, logger);
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var rows = admin.GetMetadata(Timeout).Topics
            .Where(t => !t.Topic.StartsWith("__", StringComparison.Ordinal))
            .OrderBy(t => t.Topic, StringComparer.Ordinal)
            .Select(t => new
            {
                topic = t.Topic,
                partitions = t.Partitions.Count,
                messages = t.Partitions.Sum(p => Watermarks(consumer, t.Topic, p.PartitionId).Messages),
            })
            .ToList();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(rows));
            return CliErrors.Ok;
        }

        var table = new Table().AddColumns("topic", "partitions", "messages");
        foreach (var row in rows)
        {
            table.AddRow(row.topic, $"{row.partitions}", $"{row.messages:N0}");
        }

        AnsiConsole.Write(table);
        return CliErrors.Ok;
    }

    private static int DescribeTopic(string topic, bool json, ILogger logger)
    {
        var configuration = KafkaClicksHost.LoadConfiguration();
        using var consumer = Consumer(configuration, ConsumerGroups.Cli, logger);
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var metadata = admin.GetMetadata(topic, Timeout).Topics.Single();
        if (metadata.Error.IsError || metadata.Partitions.Count == 0)
        {
            Console.Error.WriteLine($"kafkaclicks: no topic '{topic}' ({metadata.Error.Reason})");
            return CliErrors.Failed;
        }

        var rows = metadata.Partitions.OrderBy(p => p.PartitionId).Select(p =>
        {
            var w = Watermarks(consumer, topic, p.PartitionId);
            return new { partition = p.PartitionId, leader = p.Leader, low = w.Low, high = w.High, messages = w.Messages };
        }).ToList();
        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(rows));
            return CliErrors.Ok;
        }

        var table = new Table().Title(topic).AddColumns("partition", "leader", "low", "high", "messages");
        foreach (var row in rows)
        {
            table.AddRow($"{row.partition}", $"{row.leader}", $"{row.low:N0}", $"{row.high:N0}", $"{row.messages:N0}");
        }

        AnsiConsole.Write(table);
        return CliErrors.Ok;
    }

    private static int ShowLag(IConfiguration configuration, IEnumerable<string> groups, bool json, ILogger logger)
    {
        var rows = new List<(string Group, string Topic, int Partition, long Committed, long High, long Lag)>();
        foreach (var group in groups)
        {
            using var consumer = Consumer(configuration, group, logger);
            using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
            var partitions = admin.GetMetadata(Timeout).Topics
                .Where(t => !t.Topic.StartsWith("__", StringComparison.Ordinal))
                .SelectMany(t => t.Partitions.Select(p => new TopicPartition(t.Topic, p.PartitionId)))
                .ToList();

            // Committed() reads this group's offsets without joining it: safe on any broker.
            foreach (var committed in consumer.Committed(partitions, Timeout).Where(c => c.Offset.Value >= 0))
            {
                var high = Watermarks(consumer, committed.Topic, committed.Partition.Value).High;
                rows.Add((group, committed.Topic, committed.Partition.Value, committed.Offset.Value, high, Math.Max(0, high - committed.Offset.Value)));
            }
        }

        if (json)
        {
            Console.WriteLine(JsonSerializer.Serialize(rows.Select(r => new { group = r.Group, topic = r.Topic, partition = r.Partition, committed = r.Committed, high = r.High, lag = r.Lag })));
            return CliErrors.Ok;
        }

        var table = new Table().AddColumns("group", "topic", "partitions", "committed", "end", "lag");
        foreach (var g in rows.GroupBy(r => (r.Group, r.Topic)))
        {
            table.AddRow(g.Key.Group, g.Key.Topic, $"{g.Count()}", $"{g.Sum(r => r.Committed):N0}", $"{g.Sum(r => r.High):N0}", $"{g.Sum(r => r.Lag):N0}");
        }

        if (rows.Count == 0)
        {
            Console.Error.WriteLine($"no committed offsets for {string.Join(", ", groups)}");
        }

        AnsiConsole.Write(table);
        return CliErrors.Ok;
    }

    private static (long Low, long High, long Messages) Watermarks(IConsumer<byte[], byte[]> consumer, string topic, int partition)
    {
        var w = consumer.QueryWatermarkOffsets(new TopicPartition(topic, partition), Timeout);
        return (w.Low.Value, w.High.Value, Math.Max(0, w.High.Value - w.Low.Value));
    }
}
