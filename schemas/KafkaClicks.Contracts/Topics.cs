namespace KafkaClicks.Contracts;

/// <summary>Names of the Kafka topics every role agrees on (ARCHITECTURE.md, "Topics").</summary>
public static class Topics
{
    /// <summary>Raw click events, key impressionId, value <c>ClickEvent</c>; the source of truth for replay.</summary>
    public const string ClicksRaw = "clicks.raw";

    /// <summary>Partial and final per-minute counts, key adId, value <c>MinuteCount</c>.</summary>
    public const string ClicksMinute = "clicks.minute";

    /// <summary>Clicks that arrived after the aggregation grace period, key impressionId, value <c>ClickEvent</c>.</summary>
    public const string ClicksLate = "clicks.late";
}
