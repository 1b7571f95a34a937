using Confluent.Kafka;
using KafkaClicks.Contracts;

namespace KafkaClicks.Reconciler;

/// <summary>Distinct impressions per (ad, salt, minute) recounted from the raw click log.</summary>
public sealed class RawCounts
{
    /// <summary>Clicks per (adId, minute, salt), each impression counted once over the whole range.</summary>
    public Dictionary<(long AdId, DateTime Minute, int Salt), long> Windows { get; } = [];

    /// <summary>Raw events read (with repeats and events outside the range).</summary>
    public long EventsRead { get; set; }

    /// <summary>Distinct impressions counted in the range.</summary>
    public long Clicks { get; set; }

    /// <summary>Start of the part of the range the log still holds completely; null when it holds all of it.</summary>
    public DateTime? CoveredFrom { get; set; }
}

/// <summary>How far a read has come, for progress bars.</summary>
public readonly record struct ReadProgress(long Read, long Total);

/// <summary>
/// Reads clicks.raw for a time range (start offsets by timestamp, with a margin for lateness on both sides) and
/// counts distinct impressions by event time. Detects when retention moved a partition's log start past the
/// range's start, and reports the part that can no longer be recounted instead of undercounting it.
/// </summary>
public sealed class RawLogCounter
{
    private readonly string _bootstrapServers;
    private readonly TimeSpan _lateness;

    public RawLogCounter(string bootstrapServers, TimeSpan lateness)
    {
        _bootstrapServers = bootstrapServers;
        _lateness = lateness;
    }

    public RawCounts Count(DateTime from, DateTime to, long? adId, IProgress<ReadProgress>? progress, CancellationToken cancellationToken)
    {
        using var consumer = new ConsumerBuilder<string, ClickEvent>(new ConsumerConfig
            {
                BootstrapServers = _bootstrapServers,
                GroupId = "kafkaclicks-reconciler",
                EnableAutoCommit = false,
                EnablePartitionEof = true,
                AutoOffsetReset = AutoOffsetReset.Earliest,
            })
            .SetValueDeserializer(new AvroKafkaDeserializer<ClickEvent>(ContractCodecs.ClickEvent))
            .Build();
        var result = new RawCounts();
        var range = LogRanges.Plan(consumer, _bootstrapServers, Topics.ClicksRaw, from - _lateness, to + _lateness);
        var plan = range.Partitions;
        if (range.CoveredFrom is { } coveredFrom)
        {
            result.CoveredFrom = coveredFrom + _lateness;
        }

        var total = plan.Sum(p => p.End - p.Start);
        progress?.Report(new ReadProgress(0, total));
        if (plan.Count == 0)
        {
            return result;
        }

        consumer.Assign(plan.Select(p => new TopicPartitionOffset(p.Partition, p.Start)));
        var remaining = plan.ToDictionary(p => p.Partition.Partition.Value, p => p.End);
        var seen = new HashSet<string>(StringComparer.Ordinal);
        var lastReport = 0L;
        while (remaining.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            var record = consumer.Consume(TimeSpan.FromSeconds(1));
            if (record is null)
            {
                continue;
            }

            var partition = record.Partition.Value;
            if (!remaining.TryGetValue(partition, out var endOffset))
            {
                continue;
            }

            if (record.IsPartitionEOF || record.Offset.Value >= endOffset)
            {
                remaining.Remove(partition);
                continue;
            }

            if (record.Offset.Value == endOffset - 1)
            {
                remaining.Remove(partition);
            }

            result.EventsRead++;
            Tally(result, seen, record.Message.Value, from, to, adId);
            if (result.EventsRead - lastReport >= 10_000)
            {
                lastReport = result.EventsRead;
                progress?.Report(new ReadProgress(result.EventsRead, total));
            }
        }

        progress?.Report(new ReadProgress(total, total));
        return result;
    }

    private static void Tally(RawCounts result, HashSet<string> seen, ClickEvent click, DateTime from, DateTime to, long? adId)
    {
        var clickedAt = DateTime.SpecifyKind(click.ClickedAt, DateTimeKind.Utc);
        if (clickedAt < from || clickedAt >= to || (adId is { } only && click.AdId != only) || !seen.Add(click.ImpressionId))
        {
            return;
        }

        var minute = new DateTime(clickedAt.Ticks - (clickedAt.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc);
        var key = (click.AdId, minute, click.Salt);
        result.Windows[key] = result.Windows.GetValueOrDefault(key) + 1;
        result.Clicks++;
    }
}
