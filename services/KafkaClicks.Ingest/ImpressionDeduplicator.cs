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
/// repeat; one meeting a pending claim is accepted unchecked, since that claim's click may never be made durable (its
/// process died between claim and produce) and the aggregator's impression store drops a true repeat. The owner is a
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

    // 1: claimed (pending); 2: another click's pending claim; 0: another click's done claim.
    private const string ClaimScript = """
        local held = redis.call('GET', KEYS[1])
        if not held then redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) return 1 end
        if string.sub(held, 1, 1) == 'p' then return 2 end
        return 0
        """;

    // A durable click makes the claim done for the token's lifetime, whoever's pending claim (or none) is there; a done
    // claim stays as it is.
    private const string FinishScript = """
        local held = redis.call('GET', KEYS[1])
        if not held or string.sub(held, 1, 1) == 'p' then return redis.call('SET', KEYS[1], ARGV[1], 'PX', ARGV[2]) end
        return 0
        """;

    private const string ReleaseScript = "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0";
    private readonly IConnectionMultiplexer _redis;
    private readonly TimeSpan _timeout;
    private readonly ILogger<ImpressionDeduplicator> _logger;

    public ImpressionDeduplicator(IConnectionMultiplexer redis, IOptions<IngestOptions> options, ILogger<ImpressionDeduplicator> logger)
    {
        _redis = redis;
        _timeout = options.Value.DedupeTimeout;
        _logger = logger;
    }

    /// <summary>Claims the impression for this click, pending until <see cref="FinishAsync"/> or <see cref="ReleaseAsync"/>.</summary>
    public async Task<ImpressionClaim> ClaimAsync(string impressionId)
    {
        var owner = Random.Shared.NextInt64(1, long.MaxValue);
        try
        {
            var result = (long)await _redis.GetDatabase()
                .ScriptEvaluateAsync(ClaimScript, [KeyPrefix + impressionId], [Pending(owner), (long)PendingClaimLifetime.TotalMilliseconds])
                .WaitAsync(_timeout);
            return new ImpressionClaim(result switch { 1 => DedupeResult.New, 2 => DedupeResult.Unfinished, _ => DedupeResult.Duplicate }, owner);
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
    /// durable. Best effort: should Redis not answer, the pending claim lapses, and a later repeat is accepted unchecked
    /// and dropped by the aggregator.
    /// </summary>
    public async Task FinishAsync(string impressionId, ImpressionClaim claim, DateTimeOffset expiresAt, TimeProvider time)
    {
        var ttl = expiresAt - time.GetUtcNow() + TimeSpan.FromMinutes(1);
        try
        {
            await _redis.GetDatabase()
                .ScriptEvaluateAsync(FinishScript, [KeyPrefix + impressionId], [Done(claim.Owner), (long)ttl.TotalMilliseconds])
                .WaitAsync(_timeout);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
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

    private static string Pending(long owner) => "p" + owner.ToString(System.Globalization.CultureInfo.InvariantCulture);

    private static string Done(long owner) => "d" + owner.ToString(System.Globalization.CultureInfo.InvariantCulture);

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Redis unavailable for impression dedupe ({Error}); clicks are accepted unchecked")]
    private partial void LogRedisUnavailable(string error);
}
