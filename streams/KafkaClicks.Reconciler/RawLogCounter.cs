using System.IO.Hashing;
using System.Text;
using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.Reconciler;

/// <summary>Distinct impressions per (ad, salt, minute) recounted from the raw click log.</summary>
public sealed class RawCounts
{
    /// <summary>Clicks per (adId, minute, salt), each impression counted once over the whole range.</summary>
    public Dictionary<(long AdId, DateTime Minute, int Salt), long> Windows { get; } = [];

    /// <summary>Raw events read (with repeats and events outside the range).</summary>
    public long EventsRead { get; set; }

    /// <summary>Distinct impressions counted in the range.</summary>
    public long Clicks { get; set; }

    /// <summary>Start of the part of the range the log still holds completely; null when it holds all of it.</summary>
    public DateTime? CoveredFrom { get; set; }

    /// <summary>Records that do not decode as a click (skipped, as the aggregator skips them).</summary>
    public long UndecodableRecords { get; set; }
}

/// <summary>How far a read has come, for progress bars.</summary>
public readonly record struct ReadProgress(long Read, long Total);

/// <summary>
/// Reads clicks.raw for a time range (start offsets by timestamp, with a margin for lateness on both sides) and
/// counts distinct impressions by event time. Detects when retention moved a partition's log start past the
/// range's start, and reports the part that can no longer be recounted instead of undercounting it.
/// </summary>
public sealed class RawLogCounter
{
    private const int BatchSize = 2_048;

    /// <summary>
    /// Two consumers per processor: a consumer spends part of its time waiting for fetches, so a second one per processor
    /// keeps the processor busy meanwhile (benchmarks/HISTORY.md, reconcile).
    /// </summary>
    public static readonly int DefaultReaders = 2 * Environment.ProcessorCount;
    /// <summary>
    /// How much earlier than its impression's issue time a click may be stamped (the minting and the clicking ingest
    /// hosts' clocks differ), and so how much further back than a lifetime the first click of an impression can be:
    /// hosts' clocks must agree within it.
    /// </summary>
    public static readonly TimeSpan ClockTolerance = TimeSpan.FromMinutes(5);
    /// <summary>
    /// The most impressions a count holds in memory at once (about 28 bytes each, 28 MB); a read of more records spills
    /// them to group files by ad (36 bytes a record) and counts, one group of ads at a time.
    /// </summary>
    public const int DefaultImpressionsInMemory = 1_000_000;

    private readonly KafkaClientFactory _kafka;
    private readonly TimeSpan _lateness;
    private readonly TimeSpan _impressionLifetime;
    private readonly int _readers;
    private readonly string _topic;
    private readonly ILogger? _logger;
    private readonly int _impressionsInMemory;
    private readonly string _spillDirectory;

    /// <param name="kafka">The clients of the cluster holding clicks.raw.</param>
    /// <param name="lateness">How much earlier and later than the range the log is read, for clicks written late.</param>
    /// <param name="readers">Consumers reading partitions in parallel; defaults to <see cref="DefaultReaders"/>.</param>
    /// <param name="impressionLifetime">
    /// <c>Impressions:Lifetime</c> (default <see cref="SharedDefaults.ImpressionLifetime"/>): the log is also read that
    /// far before the range (and <see cref="ClockTolerance"/> more for clocks), only to learn impressions already clicked, so a repeat in
    /// the range of a click made before it is not counted, as the aggregator does not count it.
    /// </param>
    /// <param name="topic">The raw click log's topic (default clicks.raw; see <see cref="KafkaNames"/>).</param>
    /// <param name="logger">Where the consumers' librdkafka log lines go (default: librdkafka's, stderr).</param>
    /// <param name="impressionsInMemory">
    /// The most impressions held in memory at once (default <see cref="DefaultImpressionsInMemory"/>): a read of more
    /// records counts through group files in <paramref name="spillDirectory"/> (default the system's temporary folder).
    /// </param>
    /// <param name="spillDirectory">Where a large read's group files go (unlinked at once: nothing is left behind).</param>
    public RawLogCounter(KafkaClientFactory kafka, TimeSpan lateness, int? readers = null, TimeSpan? impressionLifetime = null, string? topic = null,
        ILogger? logger = null, int? impressionsInMemory = null, string? spillDirectory = null)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(impressionsInMemory ?? 1, 1, nameof(impressionsInMemory));
        ArgumentOutOfRangeException.ThrowIfLessThan(readers ?? 1, 1, nameof(readers));
        ArgumentOutOfRangeException.ThrowIfLessThan(lateness, TimeSpan.Zero, nameof(lateness));
        ArgumentOutOfRangeException.ThrowIfLessThan(impressionLifetime ?? TimeSpan.Zero, TimeSpan.Zero, nameof(impressionLifetime));
        _kafka = kafka;
        _lateness = lateness;
        _impressionLifetime = impressionLifetime ?? SharedDefaults.ImpressionLifetime;
        _readers = readers ?? DefaultReaders;
        _topic = topic ?? Topics.ClicksRaw;
        _logger = logger;
        _impressionsInMemory = impressionsInMemory ?? DefaultImpressionsInMemory;
        _spillDirectory = string.IsNullOrEmpty(spillDirectory) ? Path.GetTempPath() : spillDirectory;
    }

    /// <summary>
    /// Counts the clicks made in [<paramref name="from"/>, <paramref name="to"/>) among the records written from
    /// <c>from - lateness</c> to <c>to + lateness</c>, or, with <paramref name="toLogEnd"/>, to the end of the log as it
    /// is when the count starts (every click written so far, however late). Every window of the range is returned at
    /// once, so memory grows with them: <see cref="Open"/> hands them over group by group of ads instead.
    /// </summary>
    public RawCounts Count(DateTime from, DateTime to, long? adId, IProgress<ReadProgress>? progress, CancellationToken cancellationToken,
        bool toLogEnd = false)
    {
        using var recount = Open(from, to, adId, toLogEnd);
        recount.Read(progress, cancellationToken);
        var result = new RawCounts { CoveredFrom = recount.CoveredFrom, EventsRead = recount.EventsRead };
        foreach (var (_, windows) in recount.CountByAdGroup(cancellationToken))
        {
            foreach (var (key, clicks) in windows)
            {
                result.Windows.Add(key, clicks);
            }
        }

        result.Clicks = recount.Clicks;
        result.UndecodableRecords = recount.UndecodableRecords;
        return result;
    }

    /// <summary>
    /// Plans a recount of the clicks made in [<paramref name="from"/>, <paramref name="to"/>) as <see cref="Count"/> does
    /// (finds the offsets to read, nothing more): <see cref="RawLogRecount.Read"/> reads them, then
    /// <see cref="RawLogRecount.CountByAdGroup"/> hands the windows over one group of ads at a time.
    /// </summary>
    public RawLogRecount Open(DateTime from, DateTime to, long? adId, bool toLogEnd = false)
    {
        using var planner = CreateConsumer();
        var lookBack = _impressionLifetime + ClockTolerance;
        var range = LogRanges.Plan(planner, _kafka, _topic, from - (_lateness > lookBack ? _lateness : lookBack),
            toLogEnd ? null : to + _lateness, _logger);

        // Only a log that starts after from - lateness misses clicks of the range; one that lacks part of the look-back
        // only knows fewer earlier clicks.
        DateTime? coveredFrom = range.CoveredFrom is { } start && start + _lateness > from ? start + _lateness : null;
        var total = range.Partitions.Sum(p => p.End - p.Start);
        return new RawLogRecount(this, range.Partitions, coveredFrom,
            new ImpressionTally(from, to, adId, total, _impressionsInMemory, _spillDirectory), _readers);
    }

    /// <summary>Where large recounts spill (the database's counts of a range spill beside them).</summary>
    internal string SpillDirectory => _spillDirectory;

    internal void ReadShare(List<(TopicPartition Partition, long Start, long End)> share, ImpressionTally tally, Action<long> report, CancellationToken cancellationToken)
    {
        using var consumer = CreateConsumer();
        consumer.Assign(share.Select(p => new TopicPartitionOffset(p.Partition, p.Start)));
        var remaining = share.ToDictionary(p => p.Partition.Partition.Value, p => p.End);
        var batch = new List<RawClick>(BatchSize);
        var writer = tally.CreateWriter();
        while (remaining.Count > 0)
        {
            cancellationToken.ThrowIfCancellationRequested();
            ConsumeResult<Ignore, RawClick>? record;
            var decoded = true;
            try
            {
                record = consumer.Consume(TimeSpan.FromSeconds(1));
            }
            catch (ConsumeException e) when (e.Error.Code == ErrorCode.Local_ValueDeserialization)
            {
                // Not a click: skipped and counted, as the aggregator skips it. The consumer has moved past it.
                record = new ConsumeResult<Ignore, RawClick> { TopicPartitionOffset = e.ConsumerRecord.TopicPartitionOffset };
                decoded = false;
            }

            if (record is null)
            {
                continue;
            }

            var partition = record.Partition.Value;
            if (!remaining.TryGetValue(partition, out var endOffset))
            {
                continue;
            }

            if (record.IsPartitionEOF || record.Offset.Value >= endOffset)
            {
                remaining.Remove(partition);
                continue;
            }

            if (record.Offset.Value == endOffset - 1)
            {
                remaining.Remove(partition);
            }

            if (!decoded)
            {
                tally.Undecodable();
                report(1);
                continue;
            }

            batch.Add(record.Message.Value);
            if (batch.Count == BatchSize)
            {
                writer.Add(batch);
                report(batch.Count);
                batch.Clear();
            }
        }

        writer.Add(batch);
        writer.Flush();
        report(batch.Count);
    }

    internal IConsumer<Ignore, RawClick> CreateConsumer() =>
        _kafka.Consumer<Ignore, RawClick>(ConsumerGroups.Reconciler, _logger, config =>
            {
                // The loop ends a partition at its end offset or its EOF, whichever it sees first.
                config.EnablePartitionEof = true;
                // Partition and offset are all the loop needs: skip marshalling topic names, timestamps and headers.
                config.ConsumeResultFields = "none";
                // Bounds what each of the parallel readers prefetches (librdkafka's default is 64 MiB each), and what each
                // fetch response may hold beyond that queue (librdkafka's default is 50 MiB per broker). Reading 10 M
                // clicks from a 3-broker cluster, 4 readers peaked at 666 MB with 16 MiB and 4 MiB, 537 MB with 8 and 2,
                // 364 MB with 4 and 1 (against 480, 444 and 313 MB for 1 M clicks), at 667k, 546k and 420k events/s
                // (benchmarks/HISTORY.md, reconcile, 2026-12-07).
                config.QueuedMaxMessagesKbytes = 4 * 1024;
                config.FetchMaxBytes = 1024 * 1024;
            })
            .SetValueDeserializer(RawClickDeserializer.Instance)
            .Build();
}

/// <summary>
/// What a recount needs of one raw click. The impression is kept as the 128-bit XXH3 hash of its UTF-8 id (as
/// ClickHouse's uniqExact does for strings): a million impressions collide with a probability near 1e-27, and the
/// set takes 16 bytes per impression instead of a string.
/// </summary>
internal readonly record struct RawClick(long AdId, int Salt, long ClickedAtMs, UInt128 Impression);

/// <summary>
/// Decodes clicks.raw values in place with <see cref="ClickEventReader"/>; anything it does not read (older schema
/// versions, the Confluent wire format) goes through the full codec, which also raises the errors for bad bytes.
/// </summary>
internal sealed class RawClickDeserializer : IDeserializer<RawClick>
{
    public static readonly RawClickDeserializer Instance = new();
    private static readonly AvroKafkaDeserializer<ClickEvent> FullCodec = new(ContractCodecs.ClickEvent);

    public RawClick Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context)
    {
        if (!isNull && ClickEventReader.TryRead(data, out var view))
        {
            return new RawClick(view.AdId, view.Salt, view.ClickedAtMs, XxHash128.HashToUInt128(view.ImpressionIdUtf8));
        }

        var click = FullCodec.Deserialize(data, isNull, context);
        var clickedAtMs = new DateTimeOffset(DateTime.SpecifyKind(click.ClickedAt, DateTimeKind.Utc)).ToUnixTimeMilliseconds();
        return new RawClick(click.AdId, click.Salt, clickedAtMs, XxHash128.HashToUInt128(Encoding.UTF8.GetBytes(click.ImpressionId)));
    }
}
