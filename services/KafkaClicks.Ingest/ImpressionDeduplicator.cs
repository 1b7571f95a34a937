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
}

/// <summary>A claim on an impression: the result, and the value this click wrote, which only it may give back.</summary>
public readonly record struct ImpressionClaim(DedupeResult Result, long Owner);

/// <summary>
/// One counted click per impression: <c>SET click:imp:{id} {owner} NX PX ttl</c>, so the key lives as long as the
/// token; the owner is a random number (stored by Redis as a plain integer), so a claim is given back only by the
/// click that made it.
/// </summary>
public sealed partial class ImpressionDeduplicator
{
    private const string KeyPrefix = "click:imp:";
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

    /// <summary>Claims the impression until <paramref name="expiresAt"/> (plus a minute for clock skew).</summary>
    public async Task<ImpressionClaim> ClaimAsync(string impressionId, DateTimeOffset expiresAt, TimeProvider time)
    {
        var ttl = expiresAt - time.GetUtcNow() + TimeSpan.FromMinutes(1);
        var owner = Random.Shared.NextInt64(1, long.MaxValue);
        try
        {
            var claimed = await _redis.GetDatabase()
                .StringSetAsync(KeyPrefix + impressionId, owner, ttl, When.NotExists)
                .WaitAsync(_timeout);
            return new ImpressionClaim(claimed ? DedupeResult.New : DedupeResult.Duplicate, owner);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            // The SET may still reach Redis after the timeout: the owner lets this click give it back.
            LogRedisUnavailable(e.GetType().Name);
            return new ImpressionClaim(DedupeResult.Unchecked, owner);
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
                .ScriptEvaluateAsync(ReleaseScript, [KeyPrefix + impressionId], [claim.Owner])
                .WaitAsync(_timeout);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogRedisUnavailable(e.GetType().Name);
        }
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Redis unavailable for impression dedupe ({Error}); clicks are accepted unchecked")]
    private partial void LogRedisUnavailable(string error);
}
