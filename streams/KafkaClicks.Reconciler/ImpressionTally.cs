using System.Buffers.Binary;
using System.Runtime.InteropServices;
using KafkaClicks.Contracts;

namespace KafkaClicks.Reconciler;

/// <summary>
/// Counts each impression once, at its first click in log order, by the minute of its event time, within the range (and
/// ad) asked for. Clicks read from before the range mark their impression seen too, so a repeat of an earlier click is
/// not counted; clicks after the range are not marked (with parallel readers a later repeat could be tallied first).
/// </summary>
/// <remarks>
/// A read of at most <c>impressionsInMemory</c> records is counted in memory as it arrives. A larger one keeps memory
/// bounded by spilling: readers append each click (36 bytes) to one of up to <see cref="MaxFanOut"/> bucket files chosen
/// by its impression's hash, so all clicks of an impression share a bucket, in the order they were read (a partition is
/// read by one reader, which appends its clicks in offset order). <see cref="Finish"/> then counts bucket after bucket
/// with one set of at most <c>impressionsInMemory</c> impressions, splitting a bucket that holds more clicks than that by
/// further hash bits first. The counts are the same as counting everything in one set; the files are unlinked as soon as
/// they are created, so nothing is left on disk when the process ends, however it ends.
/// </remarks>
internal sealed class ImpressionTally : IDisposable
{
    /// <summary>At most this many bucket files are written at once.</summary>
    public const int MaxFanOut = 64;

    private const int RecordSize = 36;
    private const int BufferRecords = 455; // 16 KiB per reader and bucket
    private const int ReadRecords = 29_127; // 1 MiB per read
    private const int MaxSplits = 4;

    private readonly RawCounts _result;
    private readonly long _fromMs;
    private readonly long _toMs;
    private readonly long? _adId;
    private readonly int _impressionsInMemory;
    private readonly string _spillDirectory;
    private readonly HashSet<UInt128>? _seen;
    private readonly Bucket[] _buckets = [];
    private readonly List<Bucket> _pending = [];

    /// <param name="result">Where the windows and the number of impressions counted go.</param>
    /// <param name="expected">How many records will be read at most (from the offsets planned).</param>
    /// <param name="impressionsInMemory">The most impressions (and records of a bucket) held in memory at once.</param>
    /// <param name="spillDirectory">Where bucket files are created when <paramref name="expected"/> exceeds it.</param>
    public ImpressionTally(RawCounts result, DateTime from, DateTime to, long? adId, long expected, int impressionsInMemory, string spillDirectory)
    {
        ArgumentOutOfRangeException.ThrowIfLessThan(impressionsInMemory, 1);
        _result = result;
        _fromMs = ToUnixMs(from);
        _toMs = ToUnixMs(to);
        _adId = adId;
        _impressionsInMemory = impressionsInMemory;
        _spillDirectory = spillDirectory;
        if (expected <= impressionsInMemory)
        {
            // Sized for every record up front, so the set is not rehashed as it grows.
            _seen = new HashSet<UInt128>((int)expected);
            return;
        }

        var fanOut = (int)Math.Min(MaxFanOut, (expected + impressionsInMemory - 1) / impressionsInMemory);
        _buckets = Enumerable.Range(0, fanOut).Select(_ => new Bucket(spillDirectory)).ToArray();
    }

    /// <summary>The most impressions the tally held in memory at once.</summary>
    public long PeakImpressionsHeld { get; private set; }

    /// <summary>Whether the clicks go through bucket files (the read is larger than the impressions kept in memory).</summary>
    public bool Spills => _seen is null;

    public void Undecodable() => _result.CountUndecodable();

    /// <summary>A writer for one reader thread; each partition must be read by one writer only, in offset order.</summary>
    public Writer CreateWriter() => new(this);

    /// <summary>Counts the spilled buckets (after every writer was flushed); a tally that did not spill is done already.</summary>
    public void Finish(CancellationToken cancellationToken)
    {
        if (_seen is not null)
        {
            return;
        }

        var largest = _buckets.Max(b => b.Records);
        var seen = new HashSet<UInt128>((int)Math.Min(largest, _impressionsInMemory));
        foreach (var bucket in _buckets)
        {
            CountBucket(bucket, seen, 0, cancellationToken);
        }
    }

    public void Dispose()
    {
        foreach (var bucket in _buckets.Concat(_pending))
        {
            bucket.Dispose();
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
        ref var clicks = ref CollectionsMarshal.GetValueRefOrAddDefault(_result.Windows, (click.AdId, minute, click.Salt), out _);
        clicks++;
        _result.Clicks++;
    }

    private void CountBucket(Bucket bucket, HashSet<UInt128> seen, int splits, CancellationToken cancellationToken)
    {
        cancellationToken.ThrowIfCancellationRequested();
        if (bucket.Records > _impressionsInMemory && splits < MaxSplits)
        {
            // Too many clicks for one set: split them by further hash bits (in order), then count each part. A bucket of
            // many repeats of few impressions may not shrink; after MaxSplits it is counted anyway, its set holding
            // only its distinct impressions.
            var parts = (int)Math.Min(MaxFanOut, (bucket.Records + _impressionsInMemory - 1) / _impressionsInMemory);
            var subBuckets = Enumerable.Range(0, parts).Select(_ => new Bucket(_spillDirectory)).ToArray();
            _pending.AddRange(subBuckets);
            var writer = new Writer(this, subBuckets, splits + 1);
            bucket.ReadAll(click => writer.Add(click));
            writer.Flush();
            bucket.Dispose();
            foreach (var sub in subBuckets)
            {
                CountBucket(sub, seen, splits + 1, cancellationToken);
            }

            return;
        }

        seen.Clear();
        bucket.ReadAll(click => Count(click, seen));
        bucket.Dispose();
    }

    private static int BucketOf(UInt128 impression, int buckets, int level)
    {
        // Level 0 takes the hash's upper half, level 1 its lower half, deeper levels a remix of it.
        var bits = level switch
        {
            0 => (ulong)(impression >> 64),
            1 => (ulong)impression,
            _ => (ulong)impression * (0x9E3779B97F4A7C15UL + (ulong)level * 2) ^ (ulong)(impression >> 64),
        };
        return (int)Math.BigMul(bits, (ulong)buckets, out _);
    }

    private static long ToUnixMs(DateTime at) => (DateTime.SpecifyKind(at, DateTimeKind.Utc) - DateTime.UnixEpoch).Ticks / TimeSpan.TicksPerMillisecond;

    /// <summary>One reader's way in: counts at once (in memory, under the tally's lock) or buffers per bucket file.</summary>
    internal sealed class Writer
    {
        private readonly ImpressionTally _tally;
        private readonly Bucket[] _targets;
        private readonly int _level;
        private readonly byte[][] _buffers;
        private readonly int[] _filled;

        internal Writer(ImpressionTally tally) : this(tally, tally._buckets, 0)
        {
        }

        internal Writer(ImpressionTally tally, Bucket[] targets, int level)
        {
            _tally = tally;
            _targets = targets;
            _level = level;
            _buffers = targets.Select(_ => new byte[BufferRecords * RecordSize]).ToArray();
            _filled = new int[targets.Length];
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

        internal void Add(in RawClick click)
        {
            var bucket = BucketOf(click.Impression, _targets.Length, _level);
            var buffer = _buffers[bucket];
            Write(buffer.AsSpan(_filled[bucket] * RecordSize, RecordSize), click);
            if (++_filled[bucket] == BufferRecords)
            {
                _targets[bucket].Append(buffer, _filled[bucket]);
                _filled[bucket] = 0;
            }
        }

        /// <summary>Appends what is buffered; call once the reader is done.</summary>
        public void Flush()
        {
            for (var bucket = 0; bucket < _targets.Length; bucket++)
            {
                if (_filled[bucket] > 0)
                {
                    _targets[bucket].Append(_buffers[bucket], _filled[bucket]);
                    _filled[bucket] = 0;
                }
            }
        }

        private static void Write(Span<byte> record, in RawClick click)
        {
            BinaryPrimitives.WriteUInt64LittleEndian(record, (ulong)(click.Impression >> 64));
            BinaryPrimitives.WriteUInt64LittleEndian(record[8..], (ulong)click.Impression);
            BinaryPrimitives.WriteInt64LittleEndian(record[16..], click.AdId);
            BinaryPrimitives.WriteInt64LittleEndian(record[24..], click.ClickedAtMs);
            BinaryPrimitives.WriteInt32LittleEndian(record[32..], click.Salt);
        }
    }

    /// <summary>A bucket file, unlinked at once (its handle keeps it), appended to by every reader under its lock.</summary>
    internal sealed class Bucket : IDisposable
    {
        private readonly FileStream _file;

        public Bucket(string directory)
        {
            var path = Path.Combine(directory, $"kafkaclicks-reconcile-{Guid.NewGuid():N}.tmp");
            _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Delete, bufferSize: 0);
            File.Delete(path);
        }

        public long Records { get; private set; }

        public void Append(byte[] buffer, int records)
        {
            lock (_file)
            {
                _file.Write(buffer, 0, records * RecordSize);
                Records += records;
            }
        }

        public void ReadAll(Action<RawClick> each)
        {
            var buffer = new byte[ReadRecords * RecordSize];
            _file.Position = 0;
            int read;
            var carried = 0;
            while ((read = _file.Read(buffer, carried, buffer.Length - carried)) > 0)
            {
                var available = carried + read;
                var whole = available / RecordSize;
                for (var i = 0; i < whole; i++)
                {
                    each(Read(buffer.AsSpan(i * RecordSize, RecordSize)));
                }

                carried = available - whole * RecordSize;
                buffer.AsSpan(whole * RecordSize, carried).CopyTo(buffer);
            }
        }

        public void Dispose() => _file.Dispose();

        private static RawClick Read(ReadOnlySpan<byte> record) => new(
            BinaryPrimitives.ReadInt64LittleEndian(record[16..]),
            BinaryPrimitives.ReadInt32LittleEndian(record[32..]),
            BinaryPrimitives.ReadInt64LittleEndian(record[24..]),
            new UInt128(BinaryPrimitives.ReadUInt64LittleEndian(record), BinaryPrimitives.ReadUInt64LittleEndian(record[8..])));
    }
}
