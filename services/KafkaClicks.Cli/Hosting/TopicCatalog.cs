using KafkaClicks.Aggregator;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;

namespace KafkaClicks.Cli.Hosting;

/// <summary>Every topic this deployment uses: the contracts' <see cref="ClickTopics"/> and the aggregator's internal topics.</summary>
public static class TopicCatalog
{
    /// <summary>The declarations for the configured deployment (<c>Kafka</c> section, and the aggregator's for its internal topics).</summary>
    public static IReadOnlyList<TopicSpec> All(KafkaOptions kafka, IConfiguration configuration)
    {
        var rf = kafka.ReplicationFactor;
        var topics = ClickTopics.Declare(kafka.Names, kafka.ClicksRawPartitions, kafka.ClicksMinutePartitions, kafka.ClicksLatePartitions,
            kafka.RawRetention, rf, kafka.MinInSyncReplicas).ToList();
        topics.AddRange(AggregatorTopics.Internal(configuration, kafka.ClicksRawPartitions)
            .Select(t => ClickTopics.Durable(new TopicSpec(t.Name, t.Partitions, rf, t.Configs), kafka.MinInSyncReplicas)));
        return topics;
    }
}
