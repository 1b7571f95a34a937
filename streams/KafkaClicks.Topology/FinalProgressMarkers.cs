using Confluent.Kafka;
using KafkaClicks.Contracts;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Processors;

namespace KafkaClicks.Topology;

/// <summary>
/// What the aggregator's tasks need to send <see cref="FinalProgress"/> markers: how many clicks.raw partitions (tasks)
/// there are, and how many clicks.minute partitions to send each marker to. One instance is shared by every task of a
/// stream and by its marker partitioner, which keeps the clicks.minute partition count current.
/// </summary>
public sealed class FinalProgressMarkers
{
    private int _minutePartitions;

    /// <param name="rawPartitions">The number of clicks.raw partitions, one aggregator task each.</param>
    /// <param name="minutePartitions">The number of clicks.minute partitions when the stream starts.</param>
    public FinalProgressMarkers(int rawPartitions, int minutePartitions)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(rawPartitions, 1);
        ArgumentOutOfRangeException.ThrowIfLessThan(minutePartitions, 1);
        RawPartitions = rawPartitions;
        _minutePartitions = minutePartitions;
    }

    /// <summary>The number of clicks.raw partitions (aggregator tasks), carried in every marker.</summary>
    public int RawPartitions { get; }

    /// <summary>The number of clicks.minute partitions: each marker goes to every one of them.</summary>
    public int MinutePartitions => Volatile.Read(ref _minutePartitions);

    /// <summary>Sends each marker to the clicks.minute partition it names, and learns the topic's current partition count.</summary>
    internal sealed class Partitioner(FinalProgressMarkers markers) : IStreamPartitioner<string, FinalProgress>
    {
        public void Initialize(IStreamConfig config)
        {
        }

        public Partition Partition(string topic, string key, FinalProgress value, Partition sourcePartition, int numPartitions)
        {
            if (numPartitions > 0)
            {
                Volatile.Write(ref markers._minutePartitions, numPartitions);
            }

            // A marker addressed past the topic's partitions (never: partitions are only ever added) still lands on one.
            return new Partition(numPartitions > 0 ? value.Partition % numPartitions : value.Partition);
        }
    }
}
