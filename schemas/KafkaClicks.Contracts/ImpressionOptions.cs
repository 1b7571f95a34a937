namespace KafkaClicks.Contracts;

/// <summary>
/// Section <c>Impressions</c>: the one impression lifetime every role reads, so that no two of them disagree on how long
/// an impression is alive. Ingest counts a click only within it (from the token's issue time, whatever expiry the token
/// carries) and keeps its Redis claim that long; the aggregator remembers each counted impression at least that long
/// after it was issued, so any repeat a counted click can have is dropped; reconciliation reads that far back before a
/// range for the first clicks of the impressions clicked in it. Every role must be given the same value.
/// </summary>
public sealed class ImpressionOptions
{
    public const string Section = "Impressions";

    /// <summary>
    /// How long after its issue an impression can be clicked and counted (default <see cref="SharedDefaults.ImpressionLifetime"/>).
    /// The aggregator's state and each recount's look-back grow with it (benchmarks/RESULTS.md, aggregate).
    /// </summary>
    public TimeSpan Lifetime { get; set; } = SharedDefaults.ImpressionLifetime;

    /// <summary>Why a lifetime of zero or less is refused.</summary>
    public const string NonPositiveLifetime = "Impressions:Lifetime must be positive: it is how long an impression can be clicked and counted.";

    /// <summary>
    /// Settings the impression lifetime replaced, each of which said part of it for one role, and the aggregator option
    /// it sets (which would be overwritten): a configuration that sets one is refused.
    /// </summary>
    public static readonly IReadOnlyList<string> ReplacedSettings =
        ["Ingest:Tokens:Lifetime", "Aggregator:DedupeHorizon", "Reconciler:DedupeLookback", "Aggregator:ImpressionLifetime"];
}
