using System.Diagnostics;
using System.Diagnostics.Metrics;
using KafkaClicks.Contracts;
using Streamiz.Kafka.Net.Processors.Public;
using Streamiz.Kafka.Net.State;

namespace KafkaClicks.Topology;

/// <summary>
/// Counts distinct impressions per (adId, salt, 1-minute window of clickedAt) for one partition of clicks.raw.
/// <para>
/// The only durable state is the impression store: impressionId to (adId, salt, window start), filed under the
/// 10-minute bucket (<see cref="ClickAggregationTopology.ImpressionBucketMs"/>) of the impression's issue time, which
/// every click of the impression carries (from its signed token), so a repeat is found with one point lookup however
/// long after the first click it comes; an impression is remembered for its whole lifetime (<see cref="AggregationOptions.ImpressionLifetime"/>,
/// within which ingest counts its clicks). Counting is idempotent because a replayed or repeated impression is already
/// in the store and is dropped; the counts of open windows live in memory and are rebuilt from the store after a
/// restart, so a crash between a store write and an offset commit can neither lose nor double a click.
/// </para>
/// <para>
/// Every <see cref="AggregationOptions.EmitInterval"/> (wall clock) the windows that changed are forwarded as
/// partial counts. As soon as stream time (the largest clickedAt seen) reaches window end + grace, a final count is
/// forwarded and the window is closed: with the click that moved stream time there, not at the next punctuation.
/// A click for a closed window is forwarded as late and not counted. Each count carries the click time of the
/// earliest click it adds to the window's previous emission (<see cref="MinuteCount.EarliestNewClickAt"/>), from which
/// the sink measures how long clicks take to become queryable.
/// </para>
/// <para>
/// When the partition goes quiet (a night, the end of a campaign, a drained test), no click moves stream time, so the
/// punctuation moves it on at the wall clock's pace: once a whole emit interval has passed without a click, stream time
/// is the stream time of the last punctuation that saw clicks plus the wall-clock time elapsed since it, and the
/// windows it passed close as they would have with the next click. Nothing is compared with this host's clock, and a
/// task still reading a backlog receives records every interval, so its windows keep closing on the clicks' own times.
/// </para>
/// <para>
/// Whenever the windows it has closed reach a later minute, the task sends a <see cref="FinalProgress"/> marker to every
/// clicks.minute partition, behind the finals it covers: the sink records them per (task, partition), and the query
/// API's completeThrough is the least over all of them, so a task that restores, stalls or dies holds it back. A task
/// whose partition never had a click says so after a whole emit interval without one, once its store is restored.
/// </para>
/// </summary>
internal sealed class ClickCounter : ITransformer<string, ClickEvent, string, AggregatorOutput>
{
    private const long WindowMs = TimeBuckets.MinuteMs;

    /// <summary>How far past this process's clock a click may move stream time: small clock differences between hosts.</summary>
    private const long FutureToleranceMs = 5_000;

    private const long BucketMs = ClickAggregationTopology.ImpressionBucketMs;
    private const long RebuildSpanMs = ClickAggregationTopology.RebuildSpanMs;

    private readonly long _graceMs;
    private readonly long _lifetimeMs;
    private readonly TimeSpan _emitInterval;
    private readonly Dictionary<(long AdId, int Salt, long WindowStart), OpenWindow> _open = [];
    private readonly FinalProgressMarkers _markers;

    // The open windows by start, oldest first, so closing the windows stream time passed looks at those only.
    private readonly SortedDictionary<long, List<(long AdId, int Salt)>> _openByStart = [];
    private long _nextClose = long.MaxValue; // stream time at which the oldest open window closes
    private ProcessorContext<string, AggregatorOutput> _context = null!;
    private IWindowStore<string, SeenImpression> _impressions = null!;
    private ImpressionStoreBytes? _impressionBytes;
    private long _streamTime = long.MinValue;
    private bool _rebuilt;

    // Whether a click arrived since the last punctuation; the wall-clock time of the last punctuation that followed
    // clicks, and stream time then.
    private bool _clickSinceEmit;
    private long _lastBusyPunctuation = long.MinValue;
    private long _streamTimeAtBusyPunctuation;

    // The wall-clock time from which a task that has never seen a click (nothing in its store either) counts as quiet,
    // and the window end the last markers said every final was sent through.
    private long _emptySince = long.MinValue;
    private long _markedThrough = long.MinValue;

    /// <summary>Satisfies Streamiz' <c>new()</c> constraint; Streamiz calls the constructor that takes the options passed to <c>Transformer&lt;T&gt;(options)</c>.</summary>
    public ClickCounter()
        : this(new AggregationOptions(), new FinalProgressMarkers(1, 1))
    {
    }

    public ClickCounter(AggregationOptions options, FinalProgressMarkers markers)
    {
        _markers = markers;
        _graceMs = (long)options.Grace.TotalMilliseconds;
        _lifetimeMs = (long)options.ImpressionLifetime.TotalMilliseconds;
        _emitInterval = options.EmitInterval;
    }

    public void Init(ProcessorContext<string, AggregatorOutput> context)
    {
        _context = context;
        _impressions = (IWindowStore<string, SeenImpression>)context.GetStateStore(ClickAggregationTopology.ImpressionStore);
        _impressionBytes = ImpressionStoreBytes.Below(_impressions);

        // Not here: Streamiz calls Init before the store's changelog restore has finished, and a rebuild from a
        // half-restored store would lose the clicks restored after it. The first record comes after the restore; the
        // punctuation, which Streamiz runs while the task restores too, rebuilds only once the task is RUNNING.
        _rebuilt = false;
        context.Schedule(_emitInterval, PunctuationType.PROCESSING_TIME, Emit);
    }

    public Record<string, AggregatorOutput> Process(Record<string, ClickEvent> record)
    {
        // Continues the click's trace from ingest (W3C context in the record headers) when ingest sampled it. An
        // unsampled or absent context gets no span: a parent-based sampler would drop it anyway, yet OpenTelemetry
        // still creates an Activity for it (to propagate the context), which cost the stream thread 8% per click.
        using var activity = AggregatorTelemetry.Source.HasListeners()
            && TraceContext.Extract(record.Headers) is { TraceFlags: ActivityTraceFlags.Recorded } parent
            ? AggregatorTelemetry.Source.StartActivity("aggregate click", ActivityKind.Consumer, parent)
            : null;
        var click = record.Value;
        if (click is null)
        {
            return null!;
        }

        if (!_rebuilt)
        {
            Rebuild();
        }

        _clickSinceEmit = true;

        var clickedAt = ToUnixMs(click.ClickedAt);
        if (clickedAt > _streamTime)
        {
            // Only a click past stream time can be past the clock: stream time itself never is.
            clickedAt = AtMostNow(clickedAt);
            if (clickedAt > _streamTime)
            {
                _streamTime = clickedAt;
                CloseWindows();
            }
        }

        var windowStart = TimeBuckets.MinuteStartMs(clickedAt);

        var bucket = ImpressionBucket(click, clickedAt);
        var key = _impressionBytes is null ? null : ImpressionStoreBytes.Key(click.ImpressionId);
        if ((key is null ? _impressions.Fetch(click.ImpressionId, bucket) : _impressionBytes!.Fetch(key, bucket)) is not null)
        {
            AggregatorTelemetry.Duplicate();
            return null!;
        }

        if (IsClosed(windowStart))
        {
            AggregatorTelemetry.Late();
            _context.Forward(click.ImpressionId, new AggregatorOutput(null, click));
            return null!;
        }

        var seen = new SeenImpression(click.AdId, click.Salt, windowStart);
        if (key is null)
        {
            _impressions.Put(click.ImpressionId, seen, bucket);
        }
        else
        {
            _impressionBytes!.Put(key, seen, bucket);
        }

        var window = Open((click.AdId, click.Salt, windowStart));
        window.Clicks++;
        window.Dirty = true;
        window.EarliestNewClick = Math.Min(window.EarliestNewClick, clickedAt);
        AggregatorTelemetry.Counted();
        return null!;
    }

    public void Close() => Forget();

    private OpenWindow Open((long AdId, int Salt, long WindowStart) key)
    {
        if (!_open.TryGetValue(key, out var window))
        {
            window = new OpenWindow();
            _open[key] = window;
            if (!_openByStart.TryGetValue(key.WindowStart, out var started))
            {
                _openByStart[key.WindowStart] = started = [];
                _nextClose = Math.Min(_nextClose, key.WindowStart + WindowMs + _graceMs);
            }

            started.Add((key.AdId, key.Salt));
            AggregatorTelemetry.WindowsOpened(1);
        }

        return window;
    }

    private void Forget()
    {
        AggregatorTelemetry.WindowsOpened(-_open.Count);
        _open.Clear();
        _openByStart.Clear();
        _nextClose = long.MaxValue;
    }

    /// <summary>Forwards the final count of every window stream time has passed (end + grace), oldest first, and forgets it.</summary>
    private void CloseWindows()
    {
        DateTime? emittedAt = null;
        while (_streamTime >= _nextClose)
        {
            var (start, keys) = _openByStart.First();
            emittedAt ??= DateTime.UtcNow;
            foreach (var (adId, salt) in keys)
            {
                var key = (adId, salt, start);
                Forward(key, _open[key], final: true, emittedAt.Value);
                _open.Remove(key);
            }

            _openByStart.Remove(start);
            _nextClose = _openByStart.Count > 0 ? _openByStart.Keys.First() + WindowMs + _graceMs : long.MaxValue;
            AggregatorTelemetry.WindowsOpened(-keys.Count);
        }
    }

    private void Forward((long AdId, int Salt, long WindowStart) key, OpenWindow window, bool final, DateTime emittedAt)
    {
        var count = new MinuteCount
        {
            AdId = key.AdId,
            Salt = key.Salt,
            WindowStart = DateTime.UnixEpoch.AddMilliseconds(key.WindowStart),
            Clicks = window.Clicks,
            Final = final,
            EmittedAt = emittedAt,
            EarliestNewClickAt = window.EarliestNewClick == long.MaxValue ? null : DateTime.UnixEpoch.AddMilliseconds(window.EarliestNewClick),
        };
        _context.Forward(ClickPartitioning.PartitionKey(key.AdId, 0), new AggregatorOutput(count, null));
        window.Dirty = false;
        window.EarliestNewClick = long.MaxValue;
        AggregatorTelemetry.Emitted(final);
    }

    /// <summary>
    /// The bucket <paramref name="click"/>'s impression is filed under: that of its issue time, the same for every click
    /// of the impression. An issue time more than a bucket past its click (a minting host whose clock is far ahead of the
    /// clicking one) is filed a bucket past the click at most, so that it cannot move the store's time on and expire
    /// impressions still alive; this depends on the click alone, so a replay files it alike. A click made longer than
    /// the impression lifetime after its issue (only when ingest has a longer lifetime than this aggregator: ingest counts
    /// a click only before its token's issue time plus the lifetime, by the clock that stamps the click) is counted, as
    /// ingest answered it, and said so; it is filed a lifetime before its click, in a bucket the store still keeps (under
    /// its issue time it could fall into one already dropped, and the store would silently not keep it, so a restart
    /// would rebuild its window without it), and its repeats are dropped only while they land in that same bucket.
    /// </summary>
    private long ImpressionBucket(ClickEvent click, long clickedAt)
    {
        var issuedAt = ToUnixMs(click.ImpressionAt);
        if (clickedAt - issuedAt > _lifetimeMs + FutureToleranceMs)
        {
            AggregatorTelemetry.BeyondLifetime();
            issuedAt = clickedAt - _lifetimeMs;
        }

        if (issuedAt > clickedAt + BucketMs)
        {
            issuedAt = clickedAt + BucketMs;
        }

        return TimeBuckets.FloorMs(issuedAt, BucketMs);
    }

    private bool IsClosed(long windowStart) => windowStart + WindowMs + _graceMs <= _streamTime;

    /// <summary>
    /// The punctuation at wall-clock time <paramref name="now"/> (Unix ms): finals of the windows still to close (after a
    /// rebuild, or at the wall clock's pace when the partition went quiet), then partials of the changed ones.
    /// </summary>
    private void Emit(long now)
    {
        if (!_rebuilt)
        {
            // No click since the task started. Once the task has restored its store, rebuild the windows the store
            // holds, so that they close (and the task's progress moves) in a quiet period too. Never before: a rebuild
            // from a half-restored store would finalize windows without the clicks restored after it.
            if (StreamTaskState.IsRunning(_context) != true)
            {
                return;
            }

            Rebuild();
            if (_streamTime != long.MinValue)
            {
                _lastBusyPunctuation = now;
                _streamTimeAtBusyPunctuation = _streamTime;
            }
            else
            {
                _emptySince = now;
            }
        }

        if (_clickSinceEmit)
        {
            _clickSinceEmit = false;
            _lastBusyPunctuation = now;
            _streamTimeAtBusyPunctuation = _streamTime;
        }
        else if (_lastBusyPunctuation != long.MinValue && now - _lastBusyPunctuation >= (long)_emitInterval.TotalMilliseconds)
        {
            _streamTime = Math.Max(_streamTime, _streamTimeAtBusyPunctuation + (now - _lastBusyPunctuation));
        }

        CloseWindows();
        var emittedAt = DateTime.UtcNow;
        foreach (var (key, window) in _open)
        {
            if (window.Dirty)
            {
                Forward(key, window, final: false, emittedAt);
            }
        }

        SendProgress(now, emittedAt);
    }

    /// <summary>
    /// Sends a <see cref="FinalProgress"/> marker to every clicks.minute partition when the end of the windows this task
    /// has closed moved to a later minute: every window ending at or before it is closed, its final sent before the
    /// marker. A task that has never seen a click, with nothing in its store, has no windows: after a whole emit interval
    /// without a click it says so for the windows that ended a grace period before that interval began.
    /// </summary>
    private void SendProgress(long now, DateTime emittedAt)
    {
        long closedThrough;
        if (_streamTime != long.MinValue)
        {
            closedThrough = TimeBuckets.MinuteStartMs(_streamTime - _graceMs);
        }
        else if (_emptySince != long.MinValue && now - _emptySince >= (long)_emitInterval.TotalMilliseconds)
        {
            closedThrough = TimeBuckets.MinuteStartMs(now - (long)_emitInterval.TotalMilliseconds - _graceMs);
        }
        else
        {
            return;
        }

        if (closedThrough <= _markedThrough)
        {
            return;
        }

        _markedThrough = closedThrough;
        var task = _context.Id.Partition;
        var key = task.ToString(System.Globalization.CultureInfo.InvariantCulture);
        var partitions = _markers.MinutePartitions;
        for (var partition = 0; partition < partitions; partition++)
        {
            _context.Forward(key, new AggregatorOutput(null, null, new FinalProgress
            {
                Task = task,
                Tasks = _markers.RawPartitions,
                Partition = partition,
                Partitions = partitions,
                FinalThrough = DateTime.UnixEpoch.AddMilliseconds(closedThrough),
                EmittedAt = emittedAt,
            }));
        }
    }

    /// <summary>
    /// After a restart or rebalance (on the first record, or at the first punctuation after the task restored its store,
    /// whichever comes first): recount from the impression store every window of the last
    /// <see cref="ClickAggregationTopology.RebuildSpanMs"/> before the newest, which the store holds completely (it keeps
    /// impressions a lifetime past their issue, and every click of a window came within a lifetime of its impression's),
    /// so a window whose impressions were partly expired is never re-emitted with a smaller count.
    /// </summary>
    private void Rebuild()
    {
        _rebuilt = true;
        Forget();
        var entries = new List<(long AdId, int Salt, long WindowStart)>();
        long newest = long.MinValue;
        using (var all = _impressions.All())
        {
            while (all.MoveNext())
            {
                if (all.Current is not { Value: { } seen })
                {
                    // An entry this version cannot decode (written by an older store format): not ours to count.
                    AggregatorTelemetry.Undecodable();
                    continue;
                }

                entries.Add((seen.AdId, seen.Salt, seen.WindowStart));
                newest = Math.Max(newest, seen.WindowStart);
            }
        }

        if (entries.Count == 0)
        {
            return;
        }

        _streamTime = newest;
        foreach (var key in entries)
        {
            // A window closed before the crash may have had its final forwarded but not yet sent, so every window the
            // store still holds completely is reopened and finalized again (at the next punctuation, or sooner when a
            // click moves stream time); a final emitted twice carries the same absolute count. Older windows may be
            // partly expired: left alone.
            if (key.WindowStart < newest - RebuildSpanMs)
            {
                continue;
            }

            var window = Open(key);
            window.Clicks++;
            window.Dirty = true;
        }
    }

    /// <summary>
    /// A click time no later than this process's clock (plus <see cref="FutureToleranceMs"/>). A click stamped in the
    /// future by an ingest host whose clock runs fast is counted as made now: it neither moves stream time past now,
    /// which would close the windows the other hosts' clicks are still arriving for and send those to clicks.late, nor
    /// files its impression ahead of time in the impression store, whose segments expire by the newest time stored.
    /// Reconciliation later counts it in the minute it was stamped with.
    /// </summary>
    private static long AtMostNow(long clickedAt)
    {
        var ceiling = ToUnixMs(DateTime.UtcNow) + FutureToleranceMs;
        if (clickedAt <= ceiling)
        {
            return clickedAt;
        }

        AggregatorTelemetry.FromTheFuture();
        return ceiling;
    }

    private static long ToUnixMs(DateTime value) =>
        (long)(DateTime.SpecifyKind(value, DateTimeKind.Utc) - DateTime.UnixEpoch).TotalMilliseconds;

    private sealed class OpenWindow
    {
        public long Clicks;
        public bool Dirty;

        /// <summary>
        /// clickedAt (Unix ms) of the earliest click counted since the window's last emission, or long.MaxValue when
        /// none was (also for counts rebuilt from the store, whose clicks may have been emitted before the restart).
        /// </summary>
        public long EarliestNewClick = long.MaxValue;
    }
}

/// <summary>The aggregator's one Meter (no per-ad tags).</summary>
public static class AggregatorTelemetry
{
    /// <summary>The aggregator's ActivitySource: one span per processed click, child of the click's ingest span.</summary>
    public static readonly ActivitySource Source = new("KafkaClicks.Aggregator");

    private static readonly Meter Meter = new("KafkaClicks.Aggregator");
    private static readonly Counter<long> Clicks = Meter.CreateCounter<long>("kafkaclicks.aggregator.clicks", "{click}", "Raw clicks by outcome.");
    private static readonly Counter<long> Emits = Meter.CreateCounter<long>("kafkaclicks.aggregator.emits", "{record}", "Minute counts emitted.");
    private static readonly KeyValuePair<string, object?> CountedTag = new("outcome", "counted");
    private static readonly KeyValuePair<string, object?> DuplicateTag = new("outcome", "duplicate");
    private static readonly KeyValuePair<string, object?> LateTag = new("outcome", "late");
    private static readonly KeyValuePair<string, object?> PoisonTag = new("outcome", "undecodable");

    internal static void Counted() => Clicks.Add(1, CountedTag);

    internal static void Duplicate() => Clicks.Add(1, DuplicateTag);

    internal static void Late() => Clicks.Add(1, LateTag);

    public static void Undecodable() => Clicks.Add(1, PoisonTag);

    private static readonly Counter<long> Future = Meter.CreateCounter<long>("kafkaclicks.aggregator.future_clicks", "{click}",
        "Clicks stamped later than this process's clock allows (an ingest host's clock runs fast): counted, without moving stream time past now.");

    internal static void FromTheFuture() => Future.Add(1);

    private static readonly Counter<long> Beyond = Meter.CreateCounter<long>("kafkaclicks.aggregator.clicks_beyond_lifetime", "{click}",
        "Clicks made longer than Impressions:Lifetime after their impression was issued: counted, but their repeats may be counted again. "
        + "Ingest counts clicks only within its lifetime: give every role the same Impressions:Lifetime.");

    internal static void BeyondLifetime() => Beyond.Add(1);

    private static long _openWindows;

    private static readonly ObservableGauge<long> OpenWindows = Meter.CreateObservableGauge("kafkaclicks.aggregator.open_windows",
        () => Interlocked.Read(ref _openWindows), "{window}", "Windows counted in memory and not yet final, over this process's tasks.");

    internal static void WindowsOpened(long delta) => Interlocked.Add(ref _openWindows, delta);

    internal static void Emitted(bool final) => Emits.Add(1, new KeyValuePair<string, object?>("kind", final ? "final" : "partial"));
}
