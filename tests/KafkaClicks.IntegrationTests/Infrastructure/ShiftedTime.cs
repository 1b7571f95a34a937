namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>The system clock moved by <see cref="Offset"/>: a host whose clock is behind or ahead, or a click made long ago.</summary>
public sealed class ShiftedTime(TimeSpan offset = default) : TimeProvider
{
    public TimeSpan Offset { get; set; } = offset;

    public override DateTimeOffset GetUtcNow() => System.GetUtcNow() + Offset;
}
