using System.Globalization;
using System.Security.Claims;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Caching.Memory;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Query;

/// <summary>
/// Who is asking: an admin (sees all), or one advertiser (sees only its own ads). A handler takes it as a parameter:
/// it is read from the user the API-key scheme authenticated (<see cref="ApiKeyAuthentication"/>).
/// </summary>
public sealed record Caller(bool IsAdmin, long? AdvertiserId)
{
    /// <summary>The role of admin keys, which the admin-only routes require.</summary>
    public const string AdminRole = "admin";

    private const string AdvertiserClaim = "kafkaclicks:advertiser";
    private static readonly Caller Admin = new(true, null);

    public bool MaySee(long advertiserId) => IsAdmin || AdvertiserId == advertiserId;

    /// <summary>The caller as the authenticated user of a request under <paramref name="scheme"/>.</summary>
    public ClaimsPrincipal ToPrincipal(string scheme) => new(new ClaimsIdentity(
        [IsAdmin ? new Claim(ClaimTypes.Role, AdminRole)
            : new Claim(AdvertiserClaim, AdvertiserId!.Value.ToString(CultureInfo.InvariantCulture), ClaimValueTypes.Integer64)],
        scheme));

    /// <summary>The caller <paramref name="user"/> stands for; null when the request was not authenticated by an API key.</summary>
    public static Caller? Of(ClaimsPrincipal user) =>
        user.IsInRole(AdminRole) ? Admin
        : user.FindFirst(AdvertiserClaim) is { } advertiser ? new Caller(false, long.Parse(advertiser.Value, CultureInfo.InvariantCulture))
        : null;

    /// <summary>Binds a handler's <see cref="Caller"/> parameter (the /v1 routes require an authenticated caller).</summary>
    public static ValueTask<Caller?> BindAsync(HttpContext context) => ValueTask.FromResult(Of(context.User));
}

/// <summary>The caller of a request, or the answer that refuses it (401 unauthenticated or 429 rate-limited).</summary>
public readonly record struct Authentication(Caller? Caller, IResult? Refusal);

/// <summary>
/// Bearer API keys. Keys are stored as SHA-256 hashes (advertisers.api_key_hash); admin keys come from
/// configuration and are compared in constant time. Lookups, found or not, are cached for a minute. A known key is
/// held to its own rate limit; a request without a valid key, or with a key not looked up yet, to its client network's
/// anonymous limit, which it must pass before the database is asked: random keys cost at most that many lookups.
/// </summary>
public sealed class ApiKeyAuthenticator : IDisposable
{
    private static readonly TimeSpan CacheTtl = TimeSpan.FromMinutes(1);
    private readonly NpgsqlDataSource _dataSource;
    private readonly byte[][] _adminHashes;
    private readonly MemoryCache _cache = new(new MemoryCacheOptions { SizeLimit = 100_000 });
    private readonly CallerRateLimits _limits;

    public ApiKeyAuthenticator(NpgsqlDataSource dataSource, IOptions<QueryOptions> options)
    {
        _dataSource = dataSource;
        _adminHashes = options.Value.AdminApiKeys.Select(Hash).ToArray();
        _limits = new CallerRateLimits("query", options.Value.RateLimits);
    }

    /// <summary>SHA-256 of an API key, as stored in advertisers.api_key_hash.</summary>
    public static byte[] Hash(string apiKey) => BearerKeys.Hash(apiKey);

    /// <summary>The caller for the request's bearer key, or why it is refused.</summary>
    public async ValueTask<Authentication> AuthenticateAsync(HttpRequest request, CancellationToken cancellationToken)
    {
        var context = request.HttpContext;
        if (BearerKeys.Presented(request) is not { } hash)
        {
            return Anonymous(context);
        }

        var admin = BearerKeys.IndexOf(hash, _adminHashes);
        if (admin >= 0)
        {
            return Limited(context, "admin:" + admin.ToString(CultureInfo.InvariantCulture), new Caller(true, null));
        }

        var cacheKey = Convert.ToBase64String(hash);
        if (!_cache.TryGetValue(cacheKey, out Caller? caller))
        {
            // Not looked up lately: the lookup is paid from the client network's anonymous allowance.
            if (!_limits.TryAnonymous(context))
            {
                return new Authentication(null, CallerRateLimits.TooManyRequests(context));
            }

            await using var command = _dataSource.CreateCommand($"SELECT advertiser_id FROM {Tables.Advertisers} WHERE api_key_hash = $1");
            command.Parameters.Add(new NpgsqlParameter<byte[]> { TypedValue = hash });
            var id = await command.ExecuteScalarAsync(cancellationToken);
            caller = id is long advertiserId ? new Caller(false, advertiserId) : null;
            QueryMetrics.KeyLookups.Add(1, new KeyValuePair<string, object?>("result", caller is null ? "unknown" : "found"));
            _cache.Set(cacheKey, caller, new MemoryCacheEntryOptions { Size = 1, AbsoluteExpirationRelativeToNow = CacheTtl });
            if (caller is null)
            {
                return new Authentication(null, Unauthenticated());
            }
        }
        else if (caller is null)
        {
            return Anonymous(context);
        }

        return Limited(context, "advertiser:" + caller.AdvertiserId!.Value.ToString(CultureInfo.InvariantCulture), caller);
    }

    public void Dispose()
    {
        _cache.Dispose();
        _limits.Dispose();
    }

    /// <summary>401 unauthenticated: no key, or one that is neither an admin's nor an advertiser's.</summary>
    public static IResult Unauthenticated() =>
        Problems.Problem(401, "unauthenticated", "An API key is required (Authorization: Bearer <key>).");

    private Authentication Anonymous(HttpContext context) =>
        new(null, _limits.TryAnonymous(context) ? Unauthenticated() : CallerRateLimits.TooManyRequests(context));

    private Authentication Limited(HttpContext context, string key, Caller caller) =>
        _limits.TryKey(key) ? new(caller, null) : new(null, CallerRateLimits.TooManyRequests(context));
}
