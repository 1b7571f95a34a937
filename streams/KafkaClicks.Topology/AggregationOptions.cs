using System.ComponentModel.DataAnnotations;
using KafkaClicks.Contracts;

namespace KafkaClicks.Topology;

/// <summary>Section <c>Aggregator</c>: how raw clicks become per-minute counts.</summary>
public sealed class AggregationOptions
{
    public const string Section = "Aggregator";

    /// <summary>Streamiz application id: the consumer group and the prefix of the internal topics.</summary>
    [Required]
    public string ApplicationId { get; set; } = ConsumerGroups.Aggregator;

    /// <summary>How often the windows that changed are emitted as partial counts.</summary>
    public TimeSpan EmitInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long after a window's end clicks for it are still counted; later ones go to clicks.late.</summary>
    public TimeSpan Grace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// How long after its issue an impression's clicks are dropped as repeats: <c>Impressions:Lifetime</c>, the lifetime
    /// every role shares (set from there, not from this section). The impression store keeps about this long of clicks.
    /// </summary>
    public TimeSpan ImpressionLifetime { get; set; } = SharedDefaults.ImpressionLifetime;

    /// <summary>
    /// Folder for the RocksDB state stores (a volume in production). Default: a folder per cluster under the temp
    /// folder, named after the bootstrap servers, so state never leaks from one cluster to another.
    /// </summary>
    public string? StateDirectory { get; set; }

    /// <summary>The state folder to use for a cluster reached at <paramref name="bootstrapServers"/>.</summary>
    public string StateDirectoryFor(string bootstrapServers) =>
        StateDirectory is { Length: > 0 } configured
            ? configured
            : Path.Combine(Path.GetTempPath(), "kafkaclicks-aggregator",
                string.Concat(bootstrapServers.Select(c => char.IsAsciiLetterOrDigit(c) || c is '.' or '-' ? c : '_')));

    /// <summary>
    /// Stream threads in this instance; 0: one per processor. Each thread runs its share of the partitions' tasks with
    /// its own consumer and producer. The default is 1 because with more, Streamiz stream threads that fail during
    /// partition assignment can keep the role from stopping (benchmarks/HISTORY.md).
    /// </summary>
    [Range(0, 64)]
    public int Threads { get; set; } = 1;

    /// <summary><see cref="Threads"/>, with 0 resolved to the number of processors.</summary>
    public int EffectiveThreads => Threads > 0 ? Threads : Environment.ProcessorCount;

    /// <summary>
    /// What the stream promises about its outputs across crashes; counts are exact under either (see
    /// <see cref="AggregatorGuarantee"/>). Exactly-once needs a real Kafka cluster: the embedded broker refuses it.
    /// </summary>
    public AggregatorGuarantee Guarantee { get; set; } = AggregatorGuarantee.AtLeastOnce;

    /// <summary>
    /// How often offsets and stores are committed; unset: 10 s at-least-once, 1 s exactly-once. Each commit flushes
    /// every open RocksDB segment's memtable to a new file (Streamiz runs RocksDB without its write-ahead log) and
    /// waits for it, so a shorter interval costs throughput (benchmarks/HISTORY.md). At-least-once, a longer interval
    /// costs replay after a crash: up to this much of clicks.raw is read again, and the impression store drops what it
    /// already counted; counts reach clicks.minute at the emit interval either way. Exactly-once, each commit ends a transaction and readers of committed data
    /// (the sink) see its counts only then, so the interval adds to how late counts become queryable.
    /// </summary>
    public TimeSpan? CommitInterval { get; set; }

    /// <summary><see cref="CommitInterval"/>, or its default for <see cref="Guarantee"/> when unset.</summary>
    public TimeSpan EffectiveCommitInterval =>
        CommitInterval ?? (Guarantee == AggregatorGuarantee.ExactlyOnce ? TimeSpan.FromSeconds(1) : TimeSpan.FromSeconds(10));

    /// <summary>Window size: one minute, fixed by the product (<see cref="TimeBuckets.Minute"/>).</summary>
    public static TimeSpan WindowSize => TimeBuckets.Minute;
}

/// <summary>The aggregator's processing guarantee (<c>Aggregator:Guarantee</c>).</summary>
public enum AggregatorGuarantee
{
    /// <summary>
    /// After a crash the stream reads up to a commit interval of clicks.raw again. Its impression store drops every
    /// click it already counted, so counts stay exact; but late clicks it had already forwarded can reach clicks.late
    /// again, and readers see whatever was sent before the crash (the sink keeps the newest count per window, so the
    /// database is unaffected).
    /// </summary>
    AtLeastOnce,

    /// <summary>
    /// Kafka transactions (Streamiz' exactly-once): each commit writes the outputs, the impression store's changelog
    /// and the consumed offsets atomically. What an unfinished commit sent before a crash is aborted, never seen by
    /// readers of committed data (the sink). Late clicks may still reach clicks.late twice after a crash (Streamiz'
    /// transactional ids are per process, so a restarted instance does not fence its predecessor; README), which the
    /// late-click recount tolerates. Counts of the windows still open are sent again after a restart or rebalance
    /// under either guarantee: they are recounted from the impression store and re-emitted with the same absolute
    /// values. Needs a real Kafka cluster with a replicated transaction log.
    /// </summary>
    ExactlyOnce,
}
