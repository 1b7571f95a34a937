namespace KafkaClicks.Contracts;

/// <summary>Names of the Kafka topics every role agrees on (docs/ARCHITECTURE.md, "Topics").</summary>
public static class Topics
{
    /// <summary>Raw click events, key impressionId, value <c>ClickEvent</c>; the source of truth for replay.</summary>
    public const string ClicksRaw = "clicks.raw";

    /// <summary>Partial and final per-minute counts, key adId, value <c>MinuteCount</c>.</summary>
    public const string ClicksMinute = "clicks.minute";

    /// <summary>Clicks that arrived after the aggregation grace period, key impressionId, value <c>ClickEvent</c>.</summary>
    public const string ClicksLate = "clicks.late";
}

/// <summary>
/// The names one deployment uses on its Kafka cluster: the <see cref="Topics"/>, consumer groups and Streamiz
/// application ids, each after <see cref="Prefix"/> (<c>Kafka:NamePrefix</c>, empty by default), so several
/// deployments, or test runs, can share one cluster without reading each other's clicks.
/// </summary>
public sealed record KafkaNames(string Prefix)
{
    /// <summary>No prefix: the names in <see cref="Topics"/> as they are.</summary>
    public static KafkaNames Default { get; } = new(string.Empty);

    /// <summary>clicks.raw of this deployment.</summary>
    public string ClicksRaw => Prefix + Topics.ClicksRaw;

    /// <summary>clicks.minute of this deployment.</summary>
    public string ClicksMinute => Prefix + Topics.ClicksMinute;

    /// <summary>clicks.late of this deployment.</summary>
    public string ClicksLate => Prefix + Topics.ClicksLate;

    /// <summary>A consumer group or application id of this deployment.</summary>
    public string Of(string name) => Prefix + name;
}
