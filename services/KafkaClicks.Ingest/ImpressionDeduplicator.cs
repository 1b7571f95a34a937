using System.Diagnostics;
using System.Globalization;
using KafkaClicks.Contracts;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace KafkaClicks.Ingest;

/// <summary>Result of claiming an impression in Redis.</summary>
public enum DedupeResult
{
    /// <summary>First click of this impression: count it.</summary>
    New,

    /// <summary>Already clicked: redirect, do not count.</summary>
    Duplicate,

    /// <summary>Redis did not answer in time: accept and let the aggregator's dedupe decide.</summary>
    Unchecked,

    /// <summary>
    /// Another click of this impression claimed it but has not made its event durable (yet, or ever: its process died in
    /// between). Accept and let the aggregator's dedupe decide, so the user's retry is not lost with the dead click.
    /// </summary>
    Unfinished,
}

/// <summary>A claim on an impression: the result, and the sequence number of this click's claim, which only it may give back.</summary>
public readonly record struct ImpressionClaim(DedupeResult Result, long Sequence);

/// <summary>
/// One counted click per impression. A click claims its impression with one command, <c>SET NX GET</c> of
/// <c>c{instance}:{sequence}</c> under <c>click:imp:{id}</c>, kept as long as the token; whether that claim's click is
/// durable is not written per click but per instance: every <see cref="PublishInterval"/> the instance writes the
/// sequence number through which every claim it made is settled (its click durable, or the claim given back) to
/// <c>click:settled:{instance}</c>, and keeps <c>click:alive:{instance}</c> alive for <see cref="AliveLifetime"/>.
/// A click meeting a claim settled by its instance is a repeat. One meeting an unsettled claim of a live instance waits
/// briefly for it to settle (a repeat) or be given back (claims again); one meeting an unsettled claim of an instance
/// that is gone (it died between claim and produce), or that is still unsettled after the wait, is accepted and
/// takes the claim over, since that claim's click may never be made durable; the aggregator's impression store drops
/// a true repeat. A claim still unsettled after <c>Ingest:ProduceTimeout</c> plus 5 s is given back by its own
/// instance (its click is stuck: a retry must count), so one stuck click never holds the others' claims unsettled.
/// </summary>
public sealed partial class ImpressionDeduplicator : IDisposable
{
    /// <summary>How often an instance writes the sequence number its claims are settled through.</summary>
    public static readonly TimeSpan PublishInterval = TimeSpan.FromMilliseconds(50);

    /// <summary>How long an instance that stops writing (it died) still counts as alive.</summary>
    public static readonly TimeSpan AliveLifetime = TimeSpan.FromSeconds(3);

    private const string ClaimPrefix = "click:imp:";
    private const string SettledPrefix = "click:settled:";
    private const string AlivePrefix = "click:alive:";
    private static readonly TimeSpan PendingPoll = TimeSpan.FromMilliseconds(20);
    private static readonly TimeSpan Refresh = TimeSpan.FromSeconds(1);

    private const string ReleaseScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
    private readonly IConnectionMultiplexer _redis;
    private readonly TimeSpan _timeout;

    // How long a claim may stay unsettled before its own instance gives it back: the produce deadline, after which a
    // live click is in the spool within milliseconds, plus a wide margin for a process starved of CPU. A click meeting
    // an unsettled claim of a live instance waits that long and a second more, so that the same token clicked twice at
    // once is recorded once even on a loaded host; an unsettled claim of an instance that is gone is taken over at once.
    private readonly TimeSpan _settleDeadline;
    private readonly TimeSpan _pendingWait;
    private readonly TimeSpan _settledLifetime;
    private readonly ILogger<ImpressionDeduplicator> _logger;
    private readonly string _instance = Convert.ToHexStringLower(BitConverter.GetBytes(Random.Shared.NextInt64()));
    private readonly RedisKey _settledKey;
    private readonly RedisKey _aliveKey;

    // Claims made and not settled yet: sequence number to the claim's impression and start.
    private readonly Lock _lock = new();
    private readonly SortedDictionary<long, (string Impression, long StartedAt)> _unsettled = [];
    private readonly HashSet<long> _givingBack = [];

    // Clicks of this instance waiting on another click's claim of this instance: its sequence number to their signal.
    private readonly Dictionary<long, TaskCompletionSource> _settleWaiters = [];
    private readonly Timer _publisher;
    private int _publishing;
    private long _lastSequence;
    private long _published = -1;
    private long _publishedAt;

    public ImpressionDeduplicator(IConnectionMultiplexer redis, IOptions<IngestOptions> options, IOptions<ImpressionOptions> impressions,
        ILogger<ImpressionDeduplicator> logger)
    {
        _redis = redis;
        _timeout = options.Value.DedupeTimeout;
        _settleDeadline = options.Value.ProduceTimeout + TimeSpan.FromSeconds(5);
        _pendingWait = _settleDeadline + TimeSpan.FromSeconds(1);

        // The settled mark outlives every claim of this instance (a claim lives at most an impression lifetime and a minute).
        _settledLifetime = impressions.Value.Lifetime + TimeSpan.FromHours(1);
        _logger = logger;
        _settledKey = SettledPrefix + _instance;
        _aliveKey = AlivePrefix + _instance;

        // Alive before its first claim: the mark is sent ahead of every claim on the same connection, so no other
        // instance ever sees a claim of this one before it reads as alive.
        Publish();
        _publisher = new Timer(_ => Publish(), null, PublishInterval, PublishInterval);
    }

    /// <summary>
    /// Claims the impression for this click, unsettled until <see cref="Settle"/> or <see cref="ReleaseAsync"/>, for as
    /// long as the token lives (until <paramref name="expiresAt"/>, plus a minute for clock skew). Meeting another
    /// click's unsettled claim, it waits for that claim to be settled (a repeat) or given back (claims again), and
    /// accepts the click unchecked when that claim's instance is gone or the wait ends.
    /// </summary>
    public async Task<ImpressionClaim> ClaimAsync(string impressionId, DateTimeOffset expiresAt, TimeProvider time)
    {
        var key = ClaimPrefix + impressionId;
        var ttl = expiresAt - time.GetUtcNow() + TimeSpan.FromMinutes(1);
        var database = _redis.GetDatabase();

        // Every attempt to claim takes a number of its own, unsettled from before it is sent: whatever reaches Redis
        // reads as unsettled until this click settles it. An attempt that finds another click's claim holds nothing
        // and is settled at once, so a click waiting on another claim never holds this instance's settled mark back
        // (waiting repeats would otherwise wait on each other).
        var sequence = Unsettled(impressionId);
        var mine = Claim(sequence);
        try
        {
            // SET NX GET (Redis 7): one command that claims, or says whose claim is there.
            var held = await database.StringSetAndGetAsync(key, mine, ttl, keepTtl: false, when: When.NotExists).WaitAsync(_timeout);
            var waited = Stopwatch.StartNew();
            while (!held.IsNull && held != mine)
            {
                Settle(new ImpressionClaim(DedupeResult.Duplicate, sequence));
                ClaimState state;
                try
                {
                    state = await StateOfAsync(database, key, held);
                }
                catch (Exception e) when ((e is RedisException or TimeoutException) && waited.Elapsed < _pendingWait)
                {
                    // A claim is there: a slow answer about it is waited out like an unsettled claim, not taken as
                    // leave to record the click again.
                    state = ClaimState.Unsettled;
                }

                if (state == ClaimState.Settled)
                {
                    return new ImpressionClaim(DedupeResult.Duplicate, sequence);
                }

                sequence = Unsettled(impressionId);
                mine = Claim(sequence);
                if (state == ClaimState.Abandoned || (state == ClaimState.Unsettled && waited.Elapsed >= _pendingWait))
                {
                    // Its click may never be made durable: this one is accepted and takes the claim over, so that a
                    // later repeat meets a claim whose fate is known.
                    await database.StringSetAsync(key, mine, ttl).WaitAsync(_timeout);
                    return new ImpressionClaim(DedupeResult.Unfinished, sequence);
                }

                if (state == ClaimState.Unsettled)
                {
                    await SettledOrPollAsync(held);
                }

                while (true)
                {
                    try
                    {
                        held = await database.StringSetAndGetAsync(key, mine, ttl, keepTtl: false, when: When.NotExists).WaitAsync(_timeout);
                        break;
                    }
                    catch (Exception e) when ((e is RedisException or TimeoutException) && waited.Elapsed < _pendingWait)
                    {
                        // Asked again with the same number: had this SET reached Redis and claimed, the next one finds
                        // this click's own claim.
                        await Task.Delay(PendingPoll);
                    }
                }
            }

            return new ImpressionClaim(DedupeResult.New, sequence);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The SET may still reach Redis after the timeout: the sequence number lets this click give it back.
            LogRedisUnavailable(e.GetType().Name);
            return new ImpressionClaim(DedupeResult.Unchecked, sequence);
        }
    }

    /// <summary>A new claim number for <paramref name="impressionId"/>, unsettled until <see cref="Settle"/>.</summary>
    private long Unsettled(string impressionId)
    {
        lock (_lock)
        {
            // Taken under the lock, so a publication never sees a number taken and not yet listed as unsettled.
            var sequence = ++_lastSequence;
            _unsettled[sequence] = (impressionId, Stopwatch.GetTimestamp());
            return sequence;
        }
    }

    /// <summary>
    /// Settles the claim once its click is durable: the impression reads as clicked from the next publication on
    /// (within <see cref="PublishInterval"/>). Whatever claim is in Redis now (this click's, or a later click's that took
    /// it over) is governed by its own instance's settlement.
    /// </summary>
    public void Settle(ImpressionClaim claim)
    {
        lock (_lock)
        {
            _unsettled.Remove(claim.Sequence);
            _givingBack.Remove(claim.Sequence);
            if (_settleWaiters.Remove(claim.Sequence, out var waiter))
            {
                waiter.TrySetResult();
            }
        }
    }

    /// <summary>
    /// Waits while a click meets the unsettled claim <paramref name="held"/>: for a claim of this instance, until it is
    /// settled here (a repeat of a click still in flight on this instance is answered as soon as that click is durable,
    /// not at the next publication); for another instance's, one poll interval. At most one poll interval either way.
    /// </summary>
    private Task SettledOrPollAsync(RedisValue held)
    {
        if (TryParseClaim(held, out var instance, out var sequence) && instance == _instance)
        {
            lock (_lock)
            {
                if (!_unsettled.ContainsKey(sequence))
                {
                    return Task.CompletedTask;
                }

                if (!_settleWaiters.TryGetValue(sequence, out var waiter))
                {
                    waiter = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
                    _settleWaiters[sequence] = waiter;
                }

                return Task.WhenAny(waiter.Task, Task.Delay(PendingPoll));
            }
        }

        return Task.Delay(PendingPoll);
    }

    /// <summary>
    /// Gives a claim back when the click could not be made durable, so the user's retry counts: deletes the key only
    /// if it still holds this click's claim, never another click's. If Redis cannot be reached the claim stays
    /// unsettled, and is given back again when its time is up (<see cref="Publish"/>).
    /// </summary>
    public async Task ReleaseAsync(string impressionId, ImpressionClaim claim)
    {
        if (await TryReleaseAsync(impressionId, claim.Sequence))
        {
            Settle(claim);
        }
    }

    private async Task<bool> TryReleaseAsync(string impressionId, long sequence)
    {
        try
        {
            await _redis.GetDatabase()
                .ScriptEvaluateAsync(ReleaseScript, [ClaimPrefix + impressionId], [Claim(sequence)])
                .WaitAsync(_timeout);
            return true;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogRedisUnavailable(e.GetType().Name);
            return false;
        }
    }

    internal enum ClaimState
    {
        Settled,
        Unsettled,
        Abandoned,

        /// <summary>The claim is no longer the one in Redis (given back, or taken over): claim again.</summary>
        Replaced,
    }

    /// <summary>Reads the fate of the claim <paramref name="held"/> found in Redis under <paramref name="key"/>.</summary>
    internal async Task<ClaimState> StateOfAsync(IDatabase database, RedisKey key, RedisValue held)
    {
        var value = (string?)held;
        if (value is ['p', ..])
        {
            // A pending claim of the previous version (a second SET marked it done): unsettled, its instance unknown.
            return ClaimState.Unsettled;
        }

        if (!TryParseClaim(held, out var instance, out var sequence))
        {
            // A done claim of the previous version ('d' or a bare number).
            return ClaimState.Settled;
        }

        if (instance == _instance)
        {
            // This instance's own claim: its state is here, not in the last publication.
            lock (_lock)
            {
                if (_unsettled.ContainsKey(sequence))
                {
                    return ClaimState.Unsettled;
                }
            }
        }
        else
        {
            var marks = await database.StringGetAsync([SettledPrefix + instance, AlivePrefix + instance]).WaitAsync(_timeout);
            if (!marks[0].TryParse(out long settled) || settled < sequence)
            {
                return marks[1].IsNull ? ClaimState.Abandoned : ClaimState.Unsettled;
            }
        }

        // Settled means durable or given back, and a claim is given back by deleting it before it counts as settled:
        // the claim still being there after its settlement was read proves its click durable.
        return await database.StringGetAsync(key).WaitAsync(_timeout) == held ? ClaimState.Settled : ClaimState.Replaced;
    }

    /// <summary>
    /// Writes the sequence number every claim of this instance is settled through, and keeps the instance alive; gives
    /// back claims unsettled for longer than a click can take (their click is stuck or was lost in this process).
    /// </summary>
    private void Publish()
    {
        if (Interlocked.Exchange(ref _publishing, 1) == 1)
        {
            return;
        }

        try
        {
            PublishOnce();
        }
        finally
        {
            Volatile.Write(ref _publishing, 0);
        }
    }

    private void PublishOnce()
    {
        long through;
        List<(long Sequence, string Impression)>? stuck = null;
        lock (_lock)
        {
            var oldest = Stopwatch.GetTimestamp() - (long)(_settleDeadline.TotalSeconds * Stopwatch.Frequency);
            foreach (var (sequence, (impression, startedAt)) in _unsettled)
            {
                if (startedAt < oldest && _givingBack.Add(sequence))
                {
                    (stuck ??= []).Add((sequence, impression));
                }
            }

            // Numbers are taken and listed under this lock, so nothing unsettled is passed over.
            through = _unsettled.Count > 0 ? _unsettled.Keys.First() - 1 : _lastSequence;
        }

        if (stuck is not null)
        {
            _ = GiveBackStuckAsync(stuck);
        }

        var now = Stopwatch.GetTimestamp();
        if (through == _published && Stopwatch.GetElapsedTime(_publishedAt, now) < Refresh)
        {
            return;
        }

        try
        {
            var database = _redis.GetDatabase();
            database.StringSet(_settledKey, through, _settledLifetime, flags: CommandFlags.FireAndForget);
            database.StringSet(_aliveKey, 1, AliveLifetime, flags: CommandFlags.FireAndForget);
            _published = through;
            _publishedAt = now;
        }
        catch (RedisException e)
        {
            LogRedisUnavailable(e.GetType().Name);
        }
        catch (ObjectDisposedException)
        {
            // The Redis connection was closed: the process is stopping. Nothing more can be published; the claims read
            // as settled through the last publication. (Thrown from the timer's callback, it would end the process.)
        }
    }

    private async Task GiveBackStuckAsync(List<(long Sequence, string Impression)> stuck)
    {
        foreach (var (sequence, impression) in stuck)
        {
            if (await TryReleaseAsync(impression, sequence))
            {
                LogClaimGivenBack(impression);
                Settle(new ImpressionClaim(DedupeResult.New, sequence));
            }
            else
            {
                lock (_lock)
                {
                    _givingBack.Remove(sequence); // tried again at the next publication
                }
            }
        }
    }

    /// <summary>Reads a claim of this version, <c>c{instance}:{sequence}</c>.</summary>
    private static bool TryParseClaim(RedisValue held, out string instance, out long sequence)
    {
        instance = "";
        sequence = 0;
        if ((string?)held is not ['c', .. var rest] || rest.Split(':') is not [var owner, var number]
            || !long.TryParse(number, NumberStyles.None, CultureInfo.InvariantCulture, out sequence))
        {
            return false;
        }

        instance = owner;
        return true;
    }

    private string Claim(long sequence) => string.Create(CultureInfo.InvariantCulture, $"c{_instance}:{sequence}");

    /// <summary>
    /// Publishes the claims settled so far one last time and stops; the instance reads as gone once
    /// <see cref="AliveLifetime"/> has passed, so claims it left unsettled are taken over by their retries.
    /// </summary>
    public void Dispose()
    {
        // Waits for a publication the timer is running, so that the last one below is not skipped as overlapping it.
        _publisher.DisposeAndWait(TimeSpan.FromSeconds(5));

        Publish();
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Redis unavailable for impression dedupe ({Error}); clicks are accepted unchecked")]
    private partial void LogRedisUnavailable(string error);

    [LoggerMessage(EventId = 2102, Level = LogLevel.Warning, Message = "The claim on impression {ImpressionId} was still unsettled after the produce deadline; given back so a retry counts")]
    private partial void LogClaimGivenBack(string impressionId);
}
