using KafkaClicks.Contracts;

namespace KafkaClicks.Sink;

/// <summary>Why a decoded minute count cannot be stored; the names are the metric's <c>reason</c> tag values.</summary>
public enum InvalidMinuteCountReason
{
    /// <summary>A count below zero: the table's check constraint would refuse the whole batch.</summary>
    NegativeClicks,

    /// <summary>A salt outside 0..32767 (the column is a smallint): it would be stored under another salt.</summary>
    SaltOutOfRange,

    /// <summary>A window that does not start on a whole minute: not a row of a per-minute table.</summary>
    WindowNotOnMinute,

    /// <summary>A window starting more than a day after the sink's clock: no aggregator emits one.</summary>
    WindowInFuture,
}

/// <summary>
/// What a minute count on clicks.minute must satisfy before the sink writes it. Anything else would stop the sink
/// (the database refuses the batch, and a refused batch is retried until it succeeds) or store a wrong row; such a
/// record is skipped and counted by reason, like an undecodable one.
/// </summary>
public static class MinuteCountRules
{
    /// <summary>How far ahead of the sink's clock a window may start (clock skew between hosts, generously).</summary>
    public static readonly TimeSpan FutureTolerance = TimeSpan.FromDays(1);

    /// <summary>Why <paramref name="count"/> cannot be stored, or null when it can.</summary>
    public static InvalidMinuteCountReason? Violation(MinuteCount count, DateTime utcNow)
    {
        if (count.Clicks < 0)
        {
            return InvalidMinuteCountReason.NegativeClicks;
        }

        if (count.Salt is < 0 or > short.MaxValue)
        {
            return InvalidMinuteCountReason.SaltOutOfRange;
        }

        if (!TimeBuckets.IsWholeMinute(count.WindowStart))
        {
            return InvalidMinuteCountReason.WindowNotOnMinute;
        }

        return count.WindowStart.Ticks > utcNow.Ticks + FutureTolerance.Ticks ? InvalidMinuteCountReason.WindowInFuture : null;
    }
}
