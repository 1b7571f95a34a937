using System.Diagnostics;
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

/// <summary>A claim on an impression: the result, and the value this click wrote, which only it may give back.</summary>
public readonly record struct ImpressionClaim(DedupeResult Result, long Owner);

/// <summary>
/// One counted click per impression, claimed in two steps. First a pending claim, <c>p{owner}</c> under
/// <c>click:imp:{id}</c>, that lives only <see cref="PendingClaimLifetime"/>; once the click is durable (broker ack or
/// spool) it becomes a done claim, <c>d{owner}</c>, that lives as long as the token. A click meeting a done claim is a
/// repeat; one meeting a pending claim waits briefly for it to become done (a repeat) or be given back, and is then
/// accepted unchecked, since that claim's click may never be made durable (its process died between claim and produce)
/// and the aggregator's impression store drops a true repeat. The owner is a
/// random number, so a claim is given back or finished only by the click that made it.
/// </summary>
public sealed partial class ImpressionDeduplicator
{
    /// <summary>
    /// How long a pending claim holds: far longer than a click takes to become durable (the produce deadline, then an
    /// fsync), short enough that a claim left by a dead process does not outlive the user's patience.
    /// </summary>
    public static readonly TimeSpan PendingClaimLifetime = TimeSpan.FromSeconds(30);

    private const string KeyPrefix = "click:imp:";
    private static readonly TimeSpan PendingPoll = TimeSpan.FromMilliseconds(20);

    private const string ReleaseScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
    private readonly IConnectionMultiplexer _redis;
    private readonly TimeSpan _timeout;

    // How long a click meeting a pending claim waits for it to be finished or given back: the produce deadline, after
    // which a live click is in the spool within milliseconds, plus a margin. A claim still pending then belongs to a
    // click that died.
    private readonly TimeSpan _pendingWait;
    private readonly ILogger<ImpressionDeduplicator> _logger;

    public ImpressionDeduplicator(IConnectionMultiplexer redis, IOptions<IngestOptions> options, ILogger<ImpressionDeduplicator> logger)
    {
        _redis = redis;
        _timeout = options.Value.DedupeTimeout;
        _pendingWait = options.Value.ProduceTimeout + TimeSpan.FromSeconds(1);
        _logger = logger;
    }

    /// <summary>
    /// Claims the impression for this click, pending until <see cref="Finish"/> or <see cref="ReleaseAsync"/>. Meeting
    /// another click's pending claim (the same token clicked twice at once, or a click whose process died), it waits
    /// for that claim to be finished (a repeat) or given back (claims again), and after the wait accepts the click unchecked.
    /// </summary>
    public async Task<ImpressionClaim> ClaimAsync(string impressionId)
    {
        var owner = Random.Shared.NextInt64(1, long.MaxValue);
        var key = KeyPrefix + impressionId;
        var database = _redis.GetDatabase();
        try
        {
            // SET NX GET (Redis 7): one command that claims, or says whose claim is there.
            var held = await database.StringSetAndGetAsync(key, Pending(owner), PendingClaimLifetime, keepTtl: false, when: When.NotExists)
                .WaitAsync(_timeout);
            var waited = Stopwatch.StartNew();
            while (IsPending(held) && waited.Elapsed < _pendingWait)
            {
                await Task.Delay(PendingPoll);
                held = await database.StringSetAndGetAsync(key, Pending(owner), PendingClaimLifetime, keepTtl: false, when: When.NotExists)
                    .WaitAsync(_timeout);
            }

            // A claim of an earlier version (a bare number) reads as done.
            var result = held.IsNull ? DedupeResult.New : IsPending(held) ? DedupeResult.Unfinished : DedupeResult.Duplicate;
            return new ImpressionClaim(result, owner);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The SET may still reach Redis after the timeout: the owner lets this click give it back.
            LogRedisUnavailable(e.GetType().Name);
            return new ImpressionClaim(DedupeResult.Unchecked, owner);
        }
    }

    /// <summary>
    /// Marks the impression clicked until <paramref name="expiresAt"/> (plus a minute for clock skew), once this click is
    /// durable: whatever claim is there (this click's, a dead click's pending one, another durable click's) becomes done,
    /// which is true of each. Sent without waiting for the answer; should it be lost, the pending claim lapses and a later
    /// repeat is accepted unchecked and dropped by the aggregator.
    /// </summary>
    public void Finish(string impressionId, ImpressionClaim claim, DateTimeOffset expiresAt, TimeProvider time)
    {
        var ttl = expiresAt - time.GetUtcNow() + TimeSpan.FromMinutes(1);
        try
        {
            _redis.GetDatabase().StringSet(KeyPrefix + impressionId, Done(claim.Owner), ttl, flags: CommandFlags.FireAndForget);
        }
        catch (RedisException e)
        {
            LogRedisUnavailable(e.GetType().Name);
        }
    }

    /// <summary>
    /// Gives a claim back when the click could not be made durable, so the user's retry counts: deletes the key only
    /// if it still holds this claim's owner, never an earlier click's claim (which an unchecked claim may have met).
    /// </summary>
    public async Task ReleaseAsync(string impressionId, ImpressionClaim claim)
    {
        try
        {
            await _redis.GetDatabase()
                .ScriptEvaluateAsync(ReleaseScript, [KeyPrefix + impressionId], [Pending(claim.Owner)])
                .WaitAsync(_timeout);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogRedisUnavailable(e.GetType().Name);
        }
    }

    private static bool IsPending(RedisValue held) => !held.IsNull && ((string?)held)?.StartsWith('p') == true;

    private static string Pending(long owner) => "p" + owner.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Done(long owner) => "d" + owner.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Redis unavailable for impression dedupe ({Error}); clicks are accepted unchecked")]
    private partial void LogRedisUnavailable(string error);
}
