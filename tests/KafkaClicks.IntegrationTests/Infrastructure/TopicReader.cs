using Confluent.Kafka;
using KafkaClicks.Broker;
using KafkaClicks.Contracts;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Reads a whole topic from the beginning to its current end, as a consumer of the product would.</summary>
public static class TopicReader
{
    /// <summary>Every click on the broker's clicks.raw.</summary>
    public static List<ConsumeResult<string, ClickEvent>> ReadClicks(BrokerHandle broker) => ReadClicks(broker.BootstrapServers, broker.Names.ClicksRaw);

    public static List<ConsumeResult<string, ClickEvent>> ReadClicks(string bootstrapServers, string topic)
    {
        using var consumer = new ConsumerBuilder<string, ClickEvent>(new ConsumerConfig
            {
                BootstrapServers = bootstrapServers,
                GroupId = "test-reader-" + Guid.NewGuid().ToString("N"),
                AutoOffsetReset = AutoOffsetReset.Earliest,
                EnableAutoCommit = false,
                EnablePartitionEof = true,
            })
            .SetValueDeserializer(new AvroKafkaDeserializer<ClickEvent>(ContractCodecs.ClickEvent))
            .Build();
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions
            .Select(p => new TopicPartitionOffset(topic, p.PartitionId, Offset.Beginning)).ToList();
        consumer.Assign(partitions);
        var remaining = partitions.Select(p => p.Partition.Value).ToHashSet();
        var results = new List<ConsumeResult<string, ClickEvent>>();
        var deadline = DateTime.UtcNow.AddSeconds(30);
        while (remaining.Count > 0 && DateTime.UtcNow < deadline)
        {
            var result = consumer.Consume(TimeSpan.FromMilliseconds(500));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                remaining.Remove(result.Partition.Value);
                continue;
            }

            results.Add(result);
        }

        if (remaining.Count > 0)
        {
            throw new TimeoutException($"{topic}: partitions {string.Join(",", remaining)} did not reach their end");
        }

        return results;
    }
}
