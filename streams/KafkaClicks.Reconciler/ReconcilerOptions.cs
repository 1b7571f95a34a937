namespace KafkaClicks.Reconciler;

/// <summary>Section <c>Reconciler</c>: the scheduled reconciliation role.</summary>
public sealed class ReconcilerOptions
{
    public const string Section = "Reconciler";

    /// <summary>Cron expression (UTC) for the hourly run, which reconciles the last whole hour.</summary>
    public string HourlySchedule { get; set; } = "15 * * * *";

    /// <summary>Cron expression (UTC) for the daily run, which reconciles the previous UTC day.</summary>
    public string DailySchedule { get; set; } = "30 0 * * *";

    /// <summary>
    /// How far before a range the raw log is read (records are in write order, clicks of the range can sit among earlier
    /// timestamps), and how long after its hour a late click may reach the log and still be left to the hour's scheduled
    /// run; a run reads past its range to the end of the log.
    /// </summary>
    public TimeSpan Lateness { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>Consumers reading clicks.raw's partitions in parallel; 0 means two per processor.</summary>
    public int Readers { get; set; }

    /// <summary><see cref="Readers"/>, with 0 resolved to <see cref="RawLogCounter.DefaultReaders"/>.</summary>
    public int EffectiveReaders => Readers > 0 ? Readers : RawLogCounter.DefaultReaders;

    /// <summary>
    /// How long clicks arriving on clicks.late are gathered before the hours they were made in are recounted. Only
    /// clicks that reached clicks.raw after their hour's scheduled run could read them (more than <see cref="Lateness"/>
    /// after the hour) are recounted this way; the scheduled runs count the others.
    /// </summary>
    public TimeSpan LateClickDelay { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>
    /// How soon a scheduled run that could not be done (it failed, or its windows were not final yet) is tried again;
    /// scheduled runs missed while no reconciler was running are made up at start.
    /// </summary>
    public TimeSpan RetryDelay { get; set; } = TimeSpan.FromMinutes(1);

    /// <summary>How far back missed scheduled runs are made up (Kafka:RawRetention's default: older clicks are gone from the log).</summary>
    public TimeSpan MakeUpWithin { get; set; } = TimeSpan.FromDays(7);

    /// <summary>
    /// The most impressions a recount holds in memory at once; a recount reading more records spills them to group files
    /// in <see cref="SpillDirectory"/>, each holding the clicks of a slice of the ads, and counts, compares and corrects
    /// one group at a time, so its memory does not grow with the range.
    /// </summary>
    public int ImpressionsInMemory { get; set; } = RawLogCounter.DefaultImpressionsInMemory;

    /// <summary>Why a <see cref="ImpressionsInMemory"/> below 1 is refused (the role's validation and the CLI say it alike).</summary>
    public const string NonPositiveImpressionsInMemory = "Reconciler:ImpressionsInMemory must be positive.";

    /// <summary>
    /// Where a large recount's group files go (36 bytes per record read, 28 per stored row of the range); empty: the
    /// system's temporary folder.
    /// </summary>
    public string SpillDirectory { get; set; } = "";

    /// <summary>A window differing by more than this many clicks raises an alert (warning log and metric).</summary>
    public long AlertThreshold { get; set; } = 10;
}
