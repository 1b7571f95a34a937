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

/// <summary>One counted click per impression: <c>SET click:imp:{id} 1 NX PXAT expiry</c>, so the key lives as long as the token.</summary>
public sealed partial class ImpressionDeduplicator
{
    private const string KeyPrefix = "click:imp:";
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
    public async Task<DedupeResult> ClaimAsync(string impressionId, DateTimeOffset expiresAt, TimeProvider time)
    {
        var ttl = expiresAt - time.GetUtcNow() + TimeSpan.FromMinutes(1);
        try
        {
            var claimed = await _redis.GetDatabase()
                .StringSetAsync(KeyPrefix + impressionId, 1, ttl, When.NotExists)
                .WaitAsync(_timeout);
            return claimed ? DedupeResult.New : DedupeResult.Duplicate;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogRedisUnavailable(e.GetType().Name);
            return DedupeResult.Unchecked;
        }
    }

    /// <summary>Gives a claim back when the click could not be made durable, so the user's retry counts.</summary>
    public async Task ReleaseAsync(string impressionId)
    {
        try
        {
            await _redis.GetDatabase().KeyDeleteAsync(KeyPrefix + impressionId).WaitAsync(_timeout);
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            LogRedisUnavailable(e.GetType().Name);
        }
    }

    [LoggerMessage(EventId = 2101, Level = LogLevel.Warning, Message = "Redis unavailable for impression dedupe ({Error}); clicks are accepted unchecked")]
    private partial void LogRedisUnavailable(string error);
}
