using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Query;

/// <summary>Who is asking: an admin (sees all), or one advertiser (sees only its own ads).</summary>
public sealed record Caller(bool IsAdmin, long? AdvertiserId)
{
    public bool MaySee(long advertiserId) => IsAdmin || AdvertiserId == advertiserId;
}

/// <summary>
/// Bearer API keys. Keys are stored as SHA-256 hashes (advertisers.api_key_hash); admin keys come from
/// configuration and are compared in constant time. Lookups are cached for a minute.
/// </summary>
public sealed class ApiKeyAuthenticator : IDisposable
{
    private static readonly TimeSpan CacheTtl = TimeSpan.FromMinutes(1);
    private readonly NpgsqlDataSource _dataSource;
    private readonly byte[][] _adminHashes;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 100_000 });

    public ApiKeyAuthenticator(NpgsqlDataSource dataSource, IOptions<QueryOptions> options)
    {
        _dataSource = dataSource;
        _adminHashes = options.Value.AdminApiKeys.Select(Hash).ToArray();
    }

    /// <summary>SHA-256 of an API key, as stored in advertisers.api_key_hash.</summary>
    public static byte[] Hash(string apiKey) => SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));

    /// <summary>The caller for the request's bearer key, or null when absent or unknown.</summary>
    public async ValueTask<Caller?> AuthenticateAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var header = request.Headers.Authorization.ToString();
        if (!header.StartsWith("Bearer ", StringComparison.Ordinal) || header.Length > 256)
        {
            return null;
        }

        var hash = Hash(header[7..].Trim());
        var admin = false;
        foreach (var candidate in _adminHashes)
        {
            admin |= CryptographicOperations.FixedTimeEquals(hash, candidate);
        }

        if (admin)
        {
            return new Caller(true, null);
        }

        var cacheKey = Convert.ToBase64String(hash);
        if (_cache.TryGetValue(cacheKey, out Caller? cached))
        {
            return cached;
        }

        await using var command = _dataSource.CreateCommand("SELECT advertiser_id FROM advertisers WHERE api_key_hash = $1");
        command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = hash });
        var id = await command.ExecuteScalarAsync(cancellationToken);
        var caller = id is long advertiserId ? new Caller(false, advertiserId) : null;
        _cache.Set(cacheKey, caller, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = CacheTtl });
        return caller;
    }

    public void Dispose() => _cache.Dispose();
}
