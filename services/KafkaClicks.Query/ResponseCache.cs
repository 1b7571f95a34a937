using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;
using StackExchange.Redis;

namespace KafkaClicks.Query;

/// <summary>
/// Serialized answers in Redis, for ranges that are entirely final only (they cannot change until a reconciliation
/// correction, which the TTL bounds). Redis is an optimisation: when it is down or slow the answer comes from the
/// database and the request never fails.
/// </summary>
public sealed partial class ResponseCache
{
    private const string Prefix = "kafkaclicks:query:v1:";
    private static readonly TimeSpan WarnEvery = TimeSpan.FromSeconds(30);
    private readonly IConnectionMultiplexer? _redis;
    private readonly QueryOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ResponseCache> _logger;
    private readonly string _prefix;
    private long _lastWarning;

    public ResponseCache(IServiceProvider services, NpgsqlDataSource dataSource, IOptions<QueryOptions> options, TimeProvider time, ILogger<ResponseCache> logger)
    {
        _options = options.Value;
        // Answers belong to one database: processes serving other databases may share the Redis.
        var database = new NpgsqlConnectionStringBuilder(dataSource.ConnectionString);
        _prefix = $"{Prefix}{database.Host}:{database.Port}/{database.Database}:";
        _redis = _options.CacheEnabled ? services.GetService<IConnectionMultiplexer>() : null;
        _time = time;
        _logger = logger;
    }

    /// <summary>The cache key of a request: the database, the caller's scope and every (normalised) parameter.</summary>
    public string Key(Caller caller, string canonicalRequest) =>
        _prefix + (caller.IsAdmin ? "admin" : "advertiser-" + caller.AdvertiserId) + ":" + canonicalRequest;

    /// <summary>The cached answer, or null (miss, bypass or error, each counted).</summary>
    public async Task<byte[]?> GetAsync(string key, bool final, CancellationToken cancellationToken)
    {
        if (!final || _redis is null)
        {
            QueryMetrics.CacheResult("bypass");
            return null;
        }

        if (!_redis.IsConnected)
        {
            Unavailable("not connected");
            return null;
        }

        try
        {
            var value = await _redis.GetDatabase().StringGetAsync(key).WaitAsync(_options.CacheTimeout, cancellationToken);
            QueryMetrics.CacheResult(value.HasValue ? "hit" : "miss");
            return value.HasValue ? (byte[]?)value : null;
        }
        catch (Exception e) when (e is RedisException or TimeoutException)
        {
            Unavailable(e.Message);
            return null;
        }
    }

    /// <summary>Stores a final answer without waiting for Redis.</summary>
    public void Set(string key, bool final, byte[] value)
    {
        if (!final || _redis is not { IsConnected: true })
        {
            return;
        }

        try
        {
            _redis.GetDatabase().StringSet(key, value, _options.CacheTtl, flags: CommandFlags.FireAndForget);
        }
        catch (RedisException e)
        {
            Unavailable(e.Message);
        }
    }

    private void Unavailable(string error)
    {
        QueryMetrics.CacheResult("error");
        var now = _time.GetTimestamp();
        var last = Interlocked.Read(ref _lastWarning);
        if ((last == 0 || _time.GetElapsedTime(last, now) > WarnEvery) && Interlocked.CompareExchange(ref _lastWarning, now, last) == last)
        {
            LogUnavailable(error);
        }
    }

    [LoggerMessage(EventId = 6001, Level = LogLevel.Warning, Message = "Query cache unavailable ({Error}); answering from the database")]
    private partial void LogUnavailable(string error);
}
