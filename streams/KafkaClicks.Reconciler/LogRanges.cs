using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.Reconciler;

/// <summary>Which offsets of each partition hold a time range, and from when on the log holds it completely.</summary>
public sealed record LogRange(IReadOnlyList<(TopicPartition Partition, long Start, long End)> Partitions, DateTime? CoveredFrom);

/// <summary>
/// Finds the offsets of a time range (by record timestamp) on every partition of a topic. Where retention moved a
/// partition's log start past the range's start, <see cref="LogRange.CoveredFrom"/> says from when on the log is
/// complete, so callers report the lost part instead of silently undercounting it. A null end reads every partition to
/// its end (high watermark) as of the call, whatever the records' timestamps say.
/// </summary>
public static class LogRanges
{
    private static readonly TimeSpan Timeout = TimeSpan.FromSeconds(30);

    /// <param name="kafka">Builds the readers that look at single records.</param>
    /// <param name="to">Where reading ends: the first records written at or after it; null: the end of the log now.</param>
    /// <param name="logger">Where librdkafka's log lines of the readers built here go (default: librdkafka's, stderr).</param>
    public static LogRange Plan<TKey, TValue>(IConsumer<TKey, TValue> consumer, KafkaClientFactory kafka, string topic, DateTime from, DateTime? to,
        ILogger? logger = null)
    {
        using var admin = new DependentAdminClientBuilder(consumer.Handle).Build();
        var metadata = admin.GetMetadata(topic, Timeout).Topics.Single();
        if (metadata.Error.IsError)
        {
            throw new KafkaException(metadata.Error);
        }

        var partitions = metadata.Partitions.Select(p => new TopicPartition(topic, p.PartitionId)).ToList();
        var starts = consumer.OffsetsForTimes(partitions.Select(p => new TopicPartitionTimestamp(p, new Timestamp(from))), Timeout);
        var ends = to is { } until
            ? consumer.OffsetsForTimes(partitions.Select(p => new TopicPartitionTimestamp(p, new Timestamp(until))), Timeout)
            : partitions.Select(p => new TopicPartitionOffset(p, Offset.End)).ToList();
        var plan = new List<(TopicPartition, long, long)>();
        DateTime? coveredFrom = null;
        foreach (var partition in partitions)
        {
            var watermarks = consumer.QueryWatermarkOffsets(partition, Timeout);
            var start = starts.Single(s => s.TopicPartition == partition).Offset;
            var end = ends.Single(e => e.TopicPartition == partition).Offset;
            long startOffset;
            if (start.Value >= 0)
            {
                startOffset = Math.Max(start.Value, watermarks.Low.Value);
            }
            else
            {
                // "No record at or after the time": trust it only if the newest record agrees; a broker that cannot
                // look offsets up by time gets the whole partition read (and filtered by time) instead.
                var newest = watermarks.High.Value > watermarks.Low.Value ? RecordTimestamp(kafka, partition, watermarks.High.Value - 1, logger) : null;
                startOffset = newest is { } newestAt && newestAt >= from ? watermarks.Low.Value : watermarks.High.Value;
            }

            var endOffset = end.Value >= 0 ? end.Value : watermarks.High.Value;
            if (watermarks.Low.Value > 0 && startOffset == watermarks.Low.Value
                && RecordTimestamp(kafka, partition, watermarks.Low.Value, logger) is { } firstAt && firstAt > from)
            {
                // Records before the log start were deleted: whatever they held before the first kept record is lost.
                coveredFrom = coveredFrom is null || firstAt > coveredFrom ? firstAt : coveredFrom;
            }

            if (endOffset > startOffset)
            {
                plan.Add((partition, startOffset, endOffset));
            }
        }

        return new LogRange(plan, coveredFrom);
    }

    private static DateTime? RecordTimestamp(KafkaClientFactory kafka, TopicPartition partition, long offset, ILogger? logger)
    {
        using var reader = kafka.Consumer<byte[], byte[]>(ConsumerGroups.LogRanges, logger).Build();
        reader.Assign(new TopicPartitionOffset(partition, offset));
        return reader.Consume(TimeSpan.FromSeconds(10))?.Message.Timestamp.UtcDateTime;
    }
}
