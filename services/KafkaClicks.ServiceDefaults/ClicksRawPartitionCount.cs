namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// clicks.raw's partition count decides which partition, and so which aggregator task, counts an ad's clicks
/// (<c>ClickPartitioning.PartitionFor</c>). The deployment records the count clicks.raw was provisioned with
/// (<see cref="KafkaOptions.ClicksRawPartitions"/>) and never uses another: ingest produces only while the topic has exactly
/// that many partitions, and the aggregator counts only then. Partitions added to the topic therefore never split an
/// ad's window between two tasks, whose emissions would overwrite each other in the sink.
/// </summary>
public static class ClicksRawPartitionCount
{
    /// <summary>Where the procedure for changing the count on purpose is described.</summary>
    public const string Procedure = "README.md, \"Changing clicks.raw's partition count\"";

    /// <summary>What a role reports while the topic's count differs from the recorded one.</summary>
    public static string Mismatch(string topic, int actual, int recorded) =>
        $"{topic} has {actual} partitions, but this deployment records {recorded} (Kafka:ClicksRawPartitions): with another count "
        + $"ads would move to other aggregator tasks while their earlier clicks are still counted. To change the count on purpose see {Procedure}";
}
