using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Ingest;

/// <summary>Where an ad's clicks go and whose ad it is.</summary>
public sealed record AdRoute(long AdId, long AdvertiserId, string RedirectUrl);

/// <summary>
/// adId to <see cref="AdRoute"/> from Postgres through a bounded in-memory cache: nothing is loaded at start,
/// so 10 million ads in the table cost only the entries clicked recently. Unknown ads are cached briefly too,
/// so a flood of made-up ids does not reach the database on every request.
/// </summary>
public sealed class AdDirectory : IDisposable
{
    private static readonly TimeSpan NegativeTtl = TimeSpan.FromSeconds(30);
    private readonly NpgsqlDataSource _dataSource;
    private readonly MemoryCache _cache;
    private readonly TimeSpan _ttl;

    public AdDirectory(NpgsqlDataSource dataSource, IOptions<IngestOptions> options)
    {
        _dataSource = dataSource;
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
        return await reader.ReadAsync(cancellationToken)
            ? new AdRoute(adId, reader.GetInt64(0), reader.GetString(1))
            : null;
    }

    public void Dispose() => _cache.Dispose();
}
