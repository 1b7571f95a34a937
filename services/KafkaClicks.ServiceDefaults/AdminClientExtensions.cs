using Confluent.Kafka;

namespace KafkaClicks.ServiceDefaults;

/// <summary>Reads the product needs from a Kafka admin client.</summary>
public static class AdminClientExtensions
{
    /// <summary>
    /// The topic's partition count in the cluster's metadata. Throws <see cref="KafkaException"/> when the cluster does not
    /// answer within <paramref name="timeout"/> or the topic does not exist (yet).
    /// </summary>
    public static int PartitionCount(this IAdminClient admin, string topic, TimeSpan timeout)
    {
        ArgumentNullException.ThrowIfNull(admin);
        var metadata = admin.GetMetadata(topic, timeout).Topics.Single();
        if (metadata.Error.IsError || metadata.Partitions.Count == 0)
        {
            throw new KafkaException(metadata.Error.IsError ? metadata.Error : new Error(ErrorCode.UnknownTopicOrPart));
        }

        return metadata.Partitions.Count;
    }
}
