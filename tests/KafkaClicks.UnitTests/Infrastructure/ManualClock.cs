namespace KafkaClicks.UnitTests.Infrastructure;

/// <summary>A clock that stands still until a test sets or advances it.</summary>
internal sealed class ManualClock(DateTimeOffset now) : TimeProvider
{
    public DateTimeOffset Now { get; set; } = now;

    public void Advance(TimeSpan by) => Now += by;

    public override DateTimeOffset GetUtcNow() => Now;
}
