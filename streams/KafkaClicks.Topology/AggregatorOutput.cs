using KafkaClicks.Contracts;

namespace KafkaClicks.Topology;

/// <summary>What the click counter forwards: a minute count for clicks.minute, or a late click for clicks.late.</summary>
public sealed record AggregatorOutput(MinuteCount? Count, ClickEvent? Late);
