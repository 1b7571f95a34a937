using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Ingest;

/// <summary>
/// Where an ad's clicks go and whose ad it is. <see cref="Location"/> is the registered URL as a Location header
/// value (<see cref="RedirectTarget"/>), or null when the registered URL cannot be redirected to.
/// </summary>
public sealed record AdRoute(long AdId, long AdvertiserId, string? Location);

/// <summary>
/// adId to <see cref="AdRoute"/> from Postgres through a bounded in-memory cache: nothing is loaded at start,
/// so 10 million ads in the table cost only the entries clicked recently. Unknown ads are cached briefly too,
/// so a flood of made-up ids does not reach the database on every request.
/// </summary>
public sealed partial class AdDirectory : IDisposable
{
    private static readonly TimeSpan NegativeTtl = TimeSpan.FromSeconds(30);
    private readonly NpgsqlDataSource _dataSource;
    private readonly MemoryCache _cache;
    private readonly TimeSpan _ttl;
    private readonly ILogger<AdDirectory> _logger;

    public AdDirectory(NpgsqlDataSource dataSource, IOptions<IngestOptions> options, ILogger<AdDirectory> logger)
    {
        _dataSource = dataSource;
        _logger = logger;
        _ttl = options.Value.AdCacheTtl;
        _cache = new MemoryCache(new MemoryCacheOptions { SizeLimit = options.Value.AdCacheEntries, CompactionPercentage = 0.1 });
    }

    /// <summary>Number of ads (and known-missing ids) held in memory now.</summary>
    public long CachedEntries => _cache.Count;

    /// <summary>The ad's route, or null when no such ad exists or it was deleted.</summary>
    public async ValueTask<AdRoute?> FindAsync(long adId, CancellationToken cancellationToken)
    {
        if (_cache.TryGetValue(adId, out AdRoute? cached))
        {
            return cached;
        }

        var route = await LoadAsync(adId, cancellationToken);
        using var entry = _cache.CreateEntry(adId);
        entry.Value = route;
        entry.Size = 1;
        entry.AbsoluteExpirationRelativeToNow = route is null ? NegativeTtl : _ttl;
        return route;
    }

    private async Task<AdRoute?> LoadAsync(long adId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            "SELECT advertiser_id, redirect_url FROM ads WHERE ad_id = $1 AND deleted_at IS NULL");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = adId });
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        if (!await reader.ReadAsync(cancellationToken))
        {
            return null;
        }

        var registered = reader.GetString(1);
        var location = RedirectTarget.ToLocation(registered);
        if (location is null)
        {
            LogUnroutable(adId, registered);
        }

        return new AdRoute(adId, reader.GetInt64(0), location);
    }

    [LoggerMessage(EventId = 1010, Level = LogLevel.Error, Message = "Ad {AdId} cannot be clicked: its redirect_url {Url} is not an absolute http(s) URL without user info")]
    private partial void LogUnroutable(long adId, string url);

    public void Dispose() => _cache.Dispose();
}
