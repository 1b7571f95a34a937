using KafkaClicks.Contracts;

namespace KafkaClicks.Topology;

/// <summary>
/// What the click counter forwards: a minute count for clicks.minute, a late click for clicks.late, or a progress
/// marker for one clicks.minute partition.
/// </summary>
public sealed record AggregatorOutput(MinuteCount? Count, ClickEvent? Late, FinalProgress? Progress = null);
