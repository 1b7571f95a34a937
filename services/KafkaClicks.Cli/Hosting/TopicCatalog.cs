using System.Globalization;
using KafkaClicks.Aggregator;
using KafkaClicks.Broker;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;

namespace KafkaClicks.Cli.Hosting;

/// <summary>Every topic the system uses, with partitions and configs: the one declaration for the embedded broker and real Kafka.</summary>
public static class TopicCatalog
{
    public static IReadOnlyList<TopicSpec> All(KafkaOptions kafka, IConfiguration configuration)
    {
        var rf = kafka.ReplicationFactor;
        var names = kafka.Names;
        var topics = new List<TopicSpec>
        {
            new(names.ClicksRaw, kafka.ClicksRawPartitions, rf, new Dictionary<string, string>
            {
                [TopicSpec.ConfigKeys.CleanupPolicy] = "compact,delete",
                [TopicSpec.ConfigKeys.RetentionMs] = ((long)kafka.RawRetention.TotalMilliseconds).ToString(CultureInfo.InvariantCulture),
            }),
            new(names.ClicksMinute, kafka.ClicksMinutePartitions, rf),
            new(names.ClicksLate, kafka.ClicksLatePartitions, rf),
        };
        topics.AddRange(AggregatorTopics.Internal(configuration, kafka.ClicksRawPartitions)
            .Select(t => new TopicSpec(t.Name, t.Partitions, rf, t.Configs)));
        return topics;
    }
}
