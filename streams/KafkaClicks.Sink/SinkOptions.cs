using System.ComponentModel.DataAnnotations;

namespace KafkaClicks.Sink;

/// <summary>Section <c>Sink</c>.</summary>
public sealed class SinkOptions
{
    public const string Section = "Sink";

    /// <summary>Consumer group of the sink on clicks.minute.</summary>
    [Required]
    public string GroupId { get; set; } = "kafkaclicks-sink";

    /// <summary>Most records written in one database transaction.</summary>
    [Range(1, 1_000_000)]
    public int MaxBatchRecords { get; set; } = 10_000;

    /// <summary>Longest a record waits in a batch before the batch is written.</summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>Longest pause between retries while the database is unreachable.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(15);
}
