using System.Buffers.Binary;
using System.Runtime.InteropServices;
using KafkaClicks.Contracts;

namespace KafkaClicks.Reconciler;

/// <summary>
/// Counts each impression once, at its first click in log order, by the minute of its event time, within the range (and
/// ad) asked for, and hands the counts per (ad, minute, salt) over group by group of ads (<see cref="CountByAdGroup"/>).
/// Clicks read from before the range mark their impression seen too, so a repeat of an earlier click is not counted;
/// clicks after the range are not marked (with parallel readers a later repeat could be tallied first).
/// </summary>
/// <remarks>
/// A read of at most <c>impressionsInMemory</c> records is counted in memory as it arrives, as one group. A larger one
/// keeps memory bounded by spilling: readers append each click (36 bytes) to one of <see cref="AdGroups"/> group files
/// (about one per <c>impressionsInMemory</c> records, at most <see cref="MaxAdGroups"/>) chosen by a hash of its ad, in
/// the order they were read (a partition is read by one reader, which appends its clicks in offset order). An impression
/// belongs to one ad (its signed token names it), so all its clicks share a group. <see cref="CountByAdGroup"/> then
/// counts group after group with one set of at most <c>impressionsInMemory</c> impressions, splitting a group that holds
/// more clicks than that by hash bits of the impression first (a hot ad), and keeps only that group's windows, so neither
/// the impressions nor the windows held grow with the range. The counts are the same as counting everything in one set.
/// </remarks>
internal sealed class ImpressionTally : IDisposable
{
    /// <summary>At most this many group files are written at once.</summary>
    public const int MaxAdGroups = 1_024;

    private const int RecordSize = 36;
    private const int BufferBytes = 8 * 1024; // per reader and group file
    private const int MaxSplits = 4;

    private readonly long _fromMs;
    private readonly long _toMs;
    private readonly long? _adId;
    private readonly int _impressionsInMemory;
    private readonly string _spillDirectory;
    private readonly HashSet<UInt128>? _seen;
    private readonly SpillFile[] _groups = [];
    private readonly List<SpillFile> _pending = [];
    private readonly Dictionary<(long AdId, DateTime Minute, int Salt), long> _windows = [];
    private long _undecodable;

    /// <param name="from">The range's start: clicks before it only mark their impression seen.</param>
    /// <param name="to">The range's end: clicks at or after it are skipped.</param>
    /// <param name="adId">The one ad counted, or null for all.</param>
    /// <param name="expected">How many records will be read at most (from the offsets planned).</param>
    /// <param name="impressionsInMemory">The most impressions (and records of a group) held in memory at once.</param>
    /// <param name="spillDirectory">Where group files are created when <paramref name="expected"/> exceeds it.</param>
    public ImpressionTally(DateTime from, DateTime to, long? adId, long expected, int impressionsInMemory, string spillDirectory)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(impressionsInMemory, 1);
        _fromMs = ToUnixMs(from);
        _toMs = ToUnixMs(to);
        _adId = adId;
        _impressionsInMemory = impressionsInMemory;
        _spillDirectory = spillDirectory;
        if (expected <= impressionsInMemory)
        {
            // Sized for every record up front, so the set is not rehashed as it grows.
            _seen = new HashSet<UInt128>((int)expected);
            AdGroups = 1;
            return;
        }

        AdGroups = (int)Math.Min(MaxAdGroups, (expected + impressionsInMemory - 1) / impressionsInMemory);
        _groups = Enumerable.Range(0, AdGroups).Select(_ => new SpillFile(spillDirectory, RecordSize)).ToArray();
    }

    /// <summary>How many groups of ads the counts come in (1 when the read is counted in memory).</summary>
    public int AdGroups { get; }

    /// <summary>The most impressions the tally held in memory at once.</summary>
    public long PeakImpressionsHeld { get; private set; }

    /// <summary>The most windows (ad, minute, salt) the tally held at once: those of one group.</summary>
    public long PeakWindowsHeld { get; private set; }

    /// <summary>Distinct impressions counted in the range, in the groups counted so far.</summary>
    public long Clicks { get; private set; }

    /// <summary>Records that did not decode as a click.</summary>
    public long UndecodableRecords => Interlocked.Read(ref _undecodable);

    /// <summary>Whether the clicks go through group files (the read is larger than the impressions kept in memory).</summary>
    public bool Spills => _seen is null;

    /// <summary>The group of <paramref name="adId"/> among <paramref name="adGroups"/>: where its counts come.</summary>
    public static int AdGroupOf(long adId, int adGroups) =>
        adGroups == 1 ? 0 : (int)Math.BigMul(((ulong)adId ^ ((ulong)adId >> 29)) * 0x9E3779B97F4A7C15UL, (ulong)adGroups, out _);

    public void Undecodable() => Interlocked.Increment(ref _undecodable);

    /// <summary>A writer for one reader thread; each partition must be read by one writer only, in offset order.</summary>
    public Writer CreateWriter() => new(this);

    /// <summary>
    /// Counts (after every writer was flushed) and hands over each group's windows: clicks per (ad, minute, salt), each
    /// impression counted once over the whole read. The dictionary is reused: it holds a group's windows only until the
    /// next group is asked for.
    /// </summary>
    public IEnumerable<(int AdGroup, IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> Windows)> CountByAdGroup(CancellationToken cancellationToken)
    {
        if (_seen is not null)
        {
            PeakWindowsHeld = Math.Max(PeakWindowsHeld, _windows.Count);
            yield return (0, _windows);
            yield break;
        }

        var largest = _groups.Max(g => g.Records);
        var seen = new HashSet<UInt128>((int)Math.Min(largest, _impressionsInMemory));
        for (var group = 0; group < _groups.Length; group++)
        {
            _windows.Clear();
            CountFile(_groups[group], seen, 0, cancellationToken);
            PeakWindowsHeld = Math.Max(PeakWindowsHeld, _windows.Count);
            yield return (group, _windows);
        }

        _windows.Clear();
        _windows.TrimExcess();
    }

    public void Dispose()
    {
        foreach (var file in _groups.Concat(_pending))
        {
            file.Dispose();
        }
    }

    private bool Wanted(in RawClick click) => (_adId is not { } only || click.AdId == only) && click.ClickedAtMs < _toMs;

    private void Count(in RawClick click, HashSet<UInt128> seen)
    {
        if (!seen.Add(click.Impression))
        {
            return;
        }

        if (seen.Count > PeakImpressionsHeld)
        {
            PeakImpressionsHeld = seen.Count;
        }

        if (click.ClickedAtMs < _fromMs)
        {
            return;
        }

        var minute = DateTime.UnixEpoch.AddMilliseconds(TimeBuckets.MinuteStartMs(click.ClickedAtMs));
        ref var clicks = ref CollectionsMarshal.GetValueRefOrAddDefault(_windows, (click.AdId, minute, click.Salt), out _);
        clicks++;
        Clicks++;
    }

    /// <summary>Counts the clicks of one file into the current group's windows (its impressions are none of another file's).</summary>
    private void CountFile(SpillFile file, HashSet<UInt128> seen, int splits, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (file.Records > _impressionsInMemory && splits < MaxSplits)
        {
            // Too many clicks for one set (a hot ad): split them by hash bits of the impression (in order), then count
            // each part into the same windows. A file of many repeats of few impressions may not shrink; after
            // MaxSplits it is counted anyway, its set holding only its distinct impressions.
            var parts = (int)Math.Min(MaxAdGroups, (file.Records + _impressionsInMemory - 1) / _impressionsInMemory);
            var subFiles = Enumerable.Range(0, parts).Select(_ => new SpillFile(_spillDirectory, RecordSize)).ToArray();
            _pending.AddRange(subFiles);
            var writer = new Writer(this, subFiles, splits + 1);
            file.ReadAll(record => writer.Add(Read(record)));
            writer.Flush();
            file.Dispose();
            foreach (var sub in subFiles)
            {
                CountFile(sub, seen, splits + 1, cancellationToken);
            }

            return;
        }

        seen.Clear();
        file.ReadAll(record => Count(Read(record), seen));
        file.Dispose();
    }

    /// <summary>Level 0 is the ad's group; deeper levels split a group by the impression's hash.</summary>
    private static int FileOf(in RawClick click, int files, int level)
    {
        if (level == 0)
        {
            return AdGroupOf(click.AdId, files);
        }

        var impression = click.Impression;
        var bits = level switch
        {
            1 => (ulong)(impression >> 64),
            2 => (ulong)impression,
            _ => (ulong)impression * (0x9E3779B97F4A7C15UL + (ulong)level * 2) ^ (ulong)(impression >> 64),
        };
        return (int)Math.BigMul(bits, (ulong)files, out _);
    }

    private static long ToUnixMs(DateTime at) => (DateTime.SpecifyKind(at, DateTimeKind.Utc) - DateTime.UnixEpoch).Ticks / TimeSpan.TicksPerMillisecond;

    private static void Write(Span<byte> record, in RawClick click)
    {
        BinaryPrimitives.WriteUInt64LittleEndian(record, (ulong)(click.Impression >> 64));
        BinaryPrimitives.WriteUInt64LittleEndian(record[8..], (ulong)click.Impression);
        BinaryPrimitives.WriteInt64LittleEndian(record[16..], click.AdId);
        BinaryPrimitives.WriteInt64LittleEndian(record[24..], click.ClickedAtMs);
        BinaryPrimitives.WriteInt32LittleEndian(record[32..], click.Salt);
    }

    private static RawClick Read(ReadOnlySpan<byte> record) => new(
        BinaryPrimitives.ReadInt64LittleEndian(record[16..]),
        BinaryPrimitives.ReadInt32LittleEndian(record[32..]),
        BinaryPrimitives.ReadInt64LittleEndian(record[24..]),
        new UInt128(BinaryPrimitives.ReadUInt64LittleEndian(record), BinaryPrimitives.ReadUInt64LittleEndian(record[8..])));

    /// <summary>One reader's way in: counts at once (in memory, under the tally's lock) or buffers per file.</summary>
    internal sealed class Writer
    {
        private readonly ImpressionTally _tally;
        private readonly SpillWriter _files;
        private readonly int _level;

        internal Writer(ImpressionTally tally) : this(tally, tally._groups, 0)
        {
        }

        internal Writer(ImpressionTally tally, SpillFile[] targets, int level)
        {
            _tally = tally;
            _files = new SpillWriter(targets, BufferBytes);
            _level = level;
        }

        public void Add(List<RawClick> batch)
        {
            if (_tally._seen is { } seen)
            {
                lock (seen)
                {
                    foreach (var click in batch)
                    {
                        if (_tally.Wanted(click))
                        {
                            _tally.Count(click, seen);
                        }
                    }
                }

                return;
            }

            foreach (var click in batch)
            {
                if (_tally.Wanted(click))
                {
                    Add(click);
                }
            }
        }

        internal void Add(in RawClick click) => Write(_files.Next(FileOf(click, _files.Targets, _level)), click);

        /// <summary>Appends what is buffered; call once the reader is done.</summary>
        public void Flush() => _files.Flush();
    }
}
