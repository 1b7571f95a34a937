using KafkaClicks.Contracts;
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
/// adId to <see cref="AdRoute"/>: a bounded in-memory cache of the ads clicked recently, in front of the local copy of
/// the ads table (<see cref="LocalAdDirectory"/>, kept in step by <see cref="AdDirectorySync"/>), in front of
/// PostgreSQL, asked only for ads the copy does not have (created since the last sync, or unknown) and for at most
/// <see cref="IngestOptions.AdLookupTimeout"/>. So clicks of known ads are routed while PostgreSQL is down, and 10
/// million ads cost memory only for the ones clicked lately. Unknown ads are cached briefly too, so a flood of made-up
/// ids does not reach the database on every request.
/// </summary>
public sealed partial class AdDirectory
{
    private static readonly TimeSpan NegativeTtl = TimeSpan.FromSeconds(30);
    private readonly NpgsqlDataSource _dataSource;
    private readonly LocalAdDirectory _local;
    private readonly AdCache _cache;
    private readonly TimeSpan _ttl;
    private readonly TimeSpan _lookupTimeout;
    private readonly ILogger<AdDirectory> _logger;

    public AdDirectory(NpgsqlDataSource dataSource, LocalAdDirectory local, IOptions<IngestOptions> options, ILogger<AdDirectory> logger)
    {
        _dataSource = dataSource;
        _local = local;
        _logger = logger;
        _ttl = options.Value.AdCacheTtl;
        _lookupTimeout = options.Value.AdLookupTimeout;
        _cache = new AdCache(options.Value.AdCacheEntries);
    }


    /// <summary>
    /// The ad's route, or null when no such ad exists or it was deleted. Throws <see cref="NpgsqlException"/> or
    /// <see cref="TimeoutException"/> when the ad is not known locally and PostgreSQL cannot say.
    /// </summary>
    public async ValueTask<AdRoute?> FindAsync(long adId, CancellationToken cancellationToken)
    {
        if (_cache.TryGet(adId, out var cached))
        {
            IngestTelemetry.AdLookup("cache");
            return cached;
        }

        var route = _local.Find(adId);
        if (route is not null)
        {
            IngestTelemetry.AdLookup("directory");
        }
        else
        {
            IngestTelemetry.AdLookup("database");
            route = await LoadAsync(adId, cancellationToken);
        }

        _cache.Set(adId, route, route is null ? NegativeTtl : _ttl);
        return route;
    }

    /// <summary>Drops the cached entry of an ad that changed, so its next click reads the new route.</summary>
    public void Forget(long adId) => _cache.Remove(adId);

    /// <summary>The route of an ad row: its registered URL as a Location, or none (logged) when it cannot be redirected to.</summary>
    public AdRoute Route(long adId, long advertiserId, string registeredUrl)
    {
        var location = RedirectTarget.ToLocation(registeredUrl);
        if (location is null)
        {
            LogUnroutable(adId, registeredUrl);
        }

        return new AdRoute(adId, advertiserId, location);
    }

    private async Task<AdRoute?> LoadAsync(long adId, CancellationToken cancellationToken)
    {
        using var timeout = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        timeout.CancelAfter(_lookupTimeout);
        try
        {
            await using var command = _dataSource.CreateCommand(
                $"SELECT advertiser_id, redirect_url FROM {Tables.Ads} WHERE ad_id = $1 AND deleted_at IS NULL");
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = adId });
            await using var reader = await command.ExecuteReaderAsync(timeout.Token);
            return await reader.ReadAsync(timeout.Token) ? Route(adId, reader.GetInt64(0), reader.GetString(1)) : null;
        }
        catch (OperationCanceledException e) when (!cancellationToken.IsCancellationRequested)
        {
            throw new TimeoutException($"PostgreSQL did not answer the lookup of ad {adId} within {_lookupTimeout.TotalMilliseconds:F0} ms.", e);
        }
    }
    [LoggerMessage(EventId = 1010, Level = LogLevel.Error, Message = "Ad {AdId} cannot be clicked: its redirect_url {Url} is not an absolute http(s) URL without user info")]
    private partial void LogUnroutable(long adId, string url);
}
