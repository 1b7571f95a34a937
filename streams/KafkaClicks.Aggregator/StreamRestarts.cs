namespace KafkaClicks.Aggregator;

/// <summary>
/// Decides what the aggregator does when its stream ends in Streamiz' ERROR state (every stream thread died, e.g. after
/// a broker stall): start a new stream, after a growing pause, as long as fewer than <see cref="MaxRestarts"/> restarts
/// happened within <see cref="Window"/>; beyond that the failure is not passing, and the process stops so that its
/// supervisor restarts it (and says so) instead of serving a role that no longer counts.
/// </summary>
public sealed class StreamRestarts(TimeProvider time)
{
    /// <summary>Restarts allowed within <see cref="Window"/>.</summary>
    public const int MaxRestarts = 3;

    /// <summary>How long a restart counts against <see cref="MaxRestarts"/>.</summary>
    public static readonly TimeSpan Window = TimeSpan.FromMinutes(10);

    private static readonly TimeSpan[] Pauses = [TimeSpan.FromSeconds(1), TimeSpan.FromSeconds(5), TimeSpan.FromSeconds(15)];
    private readonly Queue<DateTimeOffset> _recent = new();

    /// <summary>The pause before the next restart, or null when the process should stop instead.</summary>
    public TimeSpan? Next()
    {
        var now = time.GetUtcNow();
        while (_recent.Count > 0 && now - _recent.Peek() > Window)
        {
            _recent.Dequeue();
        }

        if (_recent.Count >= MaxRestarts)
        {
            return null;
        }

        _recent.Enqueue(now);
        return Pauses[Math.Min(_recent.Count, Pauses.Length) - 1];
    }
}

/// <summary>The aggregator's stream kept failing; the process stops so that it is restarted.</summary>
public sealed class AggregatorStreamFailedException(string message) : Exception(message);
