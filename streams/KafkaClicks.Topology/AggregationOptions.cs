using System.ComponentModel.DataAnnotations;

namespace KafkaClicks.Topology;

/// <summary>Section <c>Aggregator</c>: how raw clicks become per-minute counts.</summary>
public sealed class AggregationOptions
{
    public const string Section = "Aggregator";

    /// <summary>Streamiz application id: the consumer group and the prefix of the internal topics.</summary>
    [Required]
    public string ApplicationId { get; set; } = "kafkaclicks-aggregator";

    /// <summary>How often the windows that changed are emitted as partial counts.</summary>
    public TimeSpan EmitInterval { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>How long after a window's end clicks for it are still counted; later ones go to clicks.late.</summary>
    public TimeSpan Grace { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How long an impressionId is remembered to drop repeated clicks of it.</summary>
    public TimeSpan DedupeHorizon { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>Folder for the RocksDB state stores.</summary>
    public string StateDirectory { get; set; } = Path.Combine(Path.GetTempPath(), "kafkaclicks-aggregator");

    /// <summary>Stream threads in this instance.</summary>
    [Range(1, 64)]
    public int Threads { get; set; } = 1;

    /// <summary>How often offsets and stores are committed.</summary>
    public TimeSpan CommitInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>Window size: one minute, fixed by the product (kept here so tests and stores agree).</summary>
    public static TimeSpan WindowSize => TimeSpan.FromMinutes(1);
}
