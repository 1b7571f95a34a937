using System.Diagnostics.Metrics;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.Sink;

/// <summary>The sink role's one meter and its instruments.</summary>
internal static class SinkMetrics
{
    /// <summary>Seconds from 0.5 s to 1 h: freshness is seconds in normal operation and minutes to hours while catching up.</summary>
    private static readonly double[] FreshnessBucketsSeconds = [0.5, 1, 2, 5, 10, 15, 20, 30, 45, 60, 90, 120, 300, 600, 1800, 3600];

    private static readonly Meter Meter = ServiceDefaultsExtensions.CreateMeter("Sink");

    public static readonly Counter<long> RowsWritten = Meter.CreateCounter<long>("kafkaclicks.sink.rows", "{row}", "Minute rows upserted.");

    private static readonly Counter<long> PoisonRecords = Meter.CreateCounter<long>("kafkaclicks.sink.poison_records", "{record}",
        "Records skipped because they could not be decoded or could not be stored, by reason.");

    /// <summary>Counts a skipped record; <paramref name="reason"/> is an <see cref="KafkaClicks.Contracts.AvroContractErrorReason"/> or <see cref="InvalidMinuteCountReason"/> name.</summary>
    public static void Poison(string reason) => PoisonRecords.Add(1, new KeyValuePair<string, object?>("reason", reason));

    public static readonly Counter<long> Retries = Meter.CreateCounter<long>("kafkaclicks.sink.retries", "{retry}", "Batch writes retried because the database failed.");

    public static readonly Counter<long> CopyFallbacks = Meter.CreateCounter<long>("kafkaclicks.sink.copy_fallbacks", "{slice}",
        "Slices whose COPY of rows taken for new met a stored one (another writer's, or this one's before a restart) and were upserted instead.");

    public static readonly Histogram<double> BatchDuration = Meter.CreateHistogram("kafkaclicks.sink.batch.duration", "s", "Time to write one batch.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = ServiceDefaultsExtensions.LatencyBucketsSeconds });

    /// <summary>
    /// Click-to-queryable delay: for every minute count written that adds clicks, the transaction's commit time minus
    /// the click time of the earliest click it adds (<see cref="KafkaClicks.Contracts.MinuteCount.EarliestNewClickAt"/>),
    /// at least 0; so each value is the delay of the count's longest-waiting click. Counts that add no clicks (a final
    /// confirming its last partial) record nothing. Tagged <c>final</c> true/false.
    /// </summary>
    public static readonly Histogram<double> Freshness = Meter.CreateHistogram("kafkaclicks.sink.freshness", "s",
        "Click-to-queryable delay: commit time minus the click time of the earliest click a minute count adds, at least 0.",
        advice: new InstrumentAdvice<double> { HistogramBucketBoundaries = FreshnessBucketsSeconds });

    public static readonly Counter<long> RollupHoursRefreshed = Meter.CreateCounter<long>("kafkaclicks.sink.rollup.hours_refreshed", "{hour}",
        "Hours of the hourly and daily rollups recomputed by the refresh job.");

    public static readonly Counter<long> RollupAdHoursRefreshed = Meter.CreateCounter<long>("kafkaclicks.sink.rollup.ad_hours_refreshed", "{mark}",
        "Marked (hour, ad) pairs whose rollups the refresh job recomputed (plain PostgreSQL; TimescaleDB refreshes whole hours).");

    public static readonly Counter<long> MaintenanceFailures = Meter.CreateCounter<long>("kafkaclicks.sink.maintenance_failures", "{run}",
        "Rollup refresh or retention runs that failed because the database did; the next run retries.");

    public static readonly ObservableGauge<int> DatabaseUnavailableGauge = Meter.CreateObservableGauge("kafkaclicks.sink.db_unavailable",
        () => Volatile.Read(ref _unavailableSinks), "{sink}",
        "Sink loops that cannot write to the database and have stopped consuming: 1 during an outage, else 0.");

    private static int _unavailableSinks;

    public static readonly ObservableGauge<long> ConsumerLagGauge = Meter.CreateObservableGauge("kafkaclicks.sink.consumer_lag",
        () => Interlocked.Read(ref _consumerLag), "{record}",
        "Records of clicks.minute not yet written: the partitions' end offsets minus the sink's committed offsets, after each batch.");

    private static long _consumerLag;

    public static void ConsumerLag(long records) => Interlocked.Exchange(ref _consumerLag, records);

    public static readonly Counter<long> BatchRecords = Meter.CreateCounter<long>("kafkaclicks.sink.batch.records", "{record}",
        "Records consumed per batch (sum; divide by batch.duration's count for the mean batch size).");

    /// <summary>A sink loop lost (true) or regained (false) the database; drives the db_unavailable gauge.</summary>
    public static void DatabaseUnavailable(bool unavailable)
    {
        if (unavailable)
        {
            Interlocked.Increment(ref _unavailableSinks);
        }
        else
        {
            Interlocked.Decrement(ref _unavailableSinks);
        }
    }
}
