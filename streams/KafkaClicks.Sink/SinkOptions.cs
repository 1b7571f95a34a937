using System.ComponentModel.DataAnnotations;
using KafkaClicks.Contracts;

namespace KafkaClicks.Sink;

/// <summary>Section <c>Sink</c>.</summary>
public sealed class SinkOptions
{
    public const string Section = "Sink";

    /// <summary>Consumer group of the sink on clicks.minute.</summary>
    [Required]
    public string GroupId { get; set; } = ConsumerGroups.Sink;

    /// <summary>Most records written in one database transaction.</summary>
    [Range(1, 1_000_000)]
    public int MaxBatchRecords { get; set; } = 10_000;

    /// <summary>
    /// Connections one batch is written over at once, each upserting a disjoint set of ads in its own transaction
    /// (batches under 2,000 rows use one). 0: one per processor of this machine.
    /// </summary>
    [Range(0, 64)]
    public int WriterConnections { get; set; }

    /// <summary><see cref="WriterConnections"/>, with 0 resolved to the number of processors.</summary>
    public int EffectiveWriterConnections => WriterConnections > 0 ? WriterConnections : Environment.ProcessorCount;

    /// <summary>
    /// Longest a record waits in a batch before the batch is written: part of a click's time to become queryable. Under
    /// load batches fill (<see cref="MaxBatchRecords"/>) before it passes; when they do not, a shorter delay only writes
    /// smaller batches more often.
    /// </summary>
    public TimeSpan MaxBatchDelay { get; set; } = TimeSpan.FromMilliseconds(200);

    /// <summary>Longest pause between retries while the database is unreachable.</summary>
    public TimeSpan MaxRetryDelay { get; set; } = TimeSpan.FromSeconds(15);

    /// <summary>How often the rollup job recomputes the hours the sink (or anyone) marked dirty.</summary>
    [Range(typeof(TimeSpan), "00:00:00.100", "1.00:00:00")]
    public TimeSpan RollupRefreshInterval { get; set; } = TimeSpan.FromSeconds(30);

    /// <summary>How often the retention job runs (it also runs at start). Plain PostgreSQL only: on TimescaleDB it runs at start.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "7.00:00:00")]
    public TimeSpan RetentionInterval { get; set; } = TimeSpan.FromHours(1);

    /// <summary>
    /// Minute partitions whose whole day is older than this are dropped (TimescaleDB: the drop_after of the minute
    /// hypertable's retention policy, set at start). Hours older than this are never recomputed into the rollups.
    /// </summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "3650.00:00:00")]
    public TimeSpan MinuteRetention { get; set; } = SharedDefaults.MinuteRetention;

    /// <summary>Hourly and daily rollup rows older than this are deleted (TimescaleDB: the continuous aggregates' retention policies).</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "36500.00:00:00")]
    public TimeSpan RollupRetention { get; set; } = SharedDefaults.RollupRetention;

    /// <summary>How far ahead daily minute partitions are created. Plain PostgreSQL only.</summary>
    [Range(typeof(TimeSpan), "1.00:00:00", "365.00:00:00")]
    public TimeSpan PartitionsAhead { get; set; } = TimeSpan.FromDays(7);
}
