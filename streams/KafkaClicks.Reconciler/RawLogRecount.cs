using Confluent.Kafka;

namespace KafkaClicks.Reconciler;

/// <summary>
/// One recount of clicks.raw, planned by <see cref="RawLogCounter.Open"/>: <see cref="Read"/> reads the planned offsets,
/// then <see cref="CountByAdGroup"/> hands the counts over one group of ads at a time, so a caller comparing them with
/// the database holds one group's windows at once, whatever the range. Dispose it to free its files.
/// </summary>
public sealed class RawLogRecount : IDisposable
{
    private readonly RawLogCounter _counter;
    private readonly IReadOnlyList<(TopicPartition Partition, long Start, long End)> _plan;
    private readonly ImpressionTally _tally;
    private readonly int _readers;
    private long _read;

    internal RawLogRecount(RawLogCounter counter, IReadOnlyList<(TopicPartition Partition, long Start, long End)> plan, DateTime? coveredFrom,
        ImpressionTally tally, int readers)
    {
        _counter = counter;
        _plan = plan;
        CoveredFrom = coveredFrom;
        _tally = tally;
        _readers = readers;
    }

    /// <summary>Start of the part of the range the log still holds completely; null when it holds all of it.</summary>
    public DateTime? CoveredFrom { get; }

    /// <summary>
    /// How many groups of ads the counts come in: one when the read is small enough to count in memory, more when it
    /// spills. Every click of an ad is in group <see cref="AdGroupOf"/>.
    /// </summary>
    public int AdGroups => _tally.AdGroups;

    /// <summary>Raw events read (with repeats and events outside the range).</summary>
    public long EventsRead => Interlocked.Read(ref _read);

    /// <summary>Distinct impressions counted in the range, in the groups counted so far.</summary>
    public long Clicks => _tally.Clicks;

    /// <summary>Records that do not decode as a click (skipped, as the aggregator skips them).</summary>
    public long UndecodableRecords => _tally.UndecodableRecords;

    /// <summary>Where large recounts spill (the caller's own spill files of the range go beside them).</summary>
    internal string SpillDirectory => _counter.SpillDirectory;

    /// <summary>The group of ads <paramref name="adId"/> belongs to among <paramref name="adGroups"/>.</summary>
    public static int AdGroupOf(long adId, int adGroups) => ImpressionTally.AdGroupOf(adId, adGroups);

    /// <summary>
    /// Reads the planned offsets. Partitions are read by several consumers at once (each with its own librdkafka threads),
    /// dealt round-robin largest first; their clicks go to one tally, so an impression that shows up on two partitions
    /// (its ad's salt count changed between two clicks) is still counted once.
    /// </summary>
    public void Read(IProgress<ReadProgress>? progress, CancellationToken cancellationToken)
    {
        var total = _plan.Sum(p => p.End - p.Start);
        progress?.Report(new ReadProgress(0, total));
        if (_plan.Count == 0)
        {
            return;
        }

        var readers = Math.Min(_readers, _plan.Count);
        var shares = Enumerable.Range(0, readers)
            .Select(r => _plan.OrderByDescending(p => p.End - p.Start).Where((_, i) => i % readers == r).ToList())
            .ToList();
        var lastReport = 0L;
        void Report(long batch)
        {
            var now = Interlocked.Add(ref _read, batch);
            var last = Interlocked.Read(ref lastReport);
            if (now - last >= 10_000 && Interlocked.CompareExchange(ref lastReport, now, last) == last)
            {
                progress?.Report(new ReadProgress(now, total));
            }
        }

        using var failed = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var threads = shares.Select(share => Task.Factory.StartNew(
                () =>
                {
                    try
                    {
                        _counter.ReadShare(share, _tally, Report, failed.Token);
                    }
                    catch
                    {
                        failed.Cancel();
                        throw;
                    }
                },
                failed.Token,
                TaskCreationOptions.LongRunning,
                TaskScheduler.Default))
            .ToArray();
        try
        {
            Task.WaitAll(threads, CancellationToken.None);
        }
        catch (AggregateException e)
        {
            // The first real failure, not the cancellations it caused in the other readers.
            var cause = e.Flatten().InnerExceptions.FirstOrDefault(x => x is not OperationCanceledException) ?? e.InnerExceptions[0];
            System.Runtime.ExceptionServices.ExceptionDispatchInfo.Capture(cause).Throw();
        }

        progress?.Report(new ReadProgress(total, total));
    }

    /// <summary>
    /// After <see cref="Read"/>: each group's clicks per (ad, minute, salt), each impression counted once over the whole
    /// read. The dictionary is reused: it holds a group's windows only until the next group is asked for.
    /// </summary>
    public IEnumerable<(int AdGroup, IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> Windows)> CountByAdGroup(CancellationToken cancellationToken) =>
        _tally.CountByAdGroup(cancellationToken);

    public void Dispose() => _tally.Dispose();
}
