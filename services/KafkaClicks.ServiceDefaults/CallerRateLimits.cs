using System.Diagnostics.Metrics;
using System.Globalization;
using System.Net;
using System.Net.Sockets;
using System.Threading.RateLimiting;
using Microsoft.AspNetCore.Http;

namespace KafkaClicks.ServiceDefaults;

/// <summary>Rate limits of one API (sections <c>Ingest:RateLimits</c>, <c>Query:RateLimits</c>); every value is per instance.</summary>
public sealed class RateLimitOptions
{
    /// <summary>Requests per second one API key may make (a token bucket refilled every second).</summary>
    public int PerKeyPerSecond { get; set; }

    /// <summary>Requests one API key may make at once after a quiet spell (the bucket's size).</summary>
    public int PerKeyBurst { get; set; }

    /// <summary>
    /// Requests per second one client network may make without a valid key: no key, a wrong key, or a key not yet looked
    /// up (so an unknown key costs a database lookup only within this limit). A client network is an IPv4 address or an
    /// IPv6 /64, as <c>Http:TrustedProxies</c> lets the forwarded address through.
    /// </summary>
    public int AnonymousPerSecond { get; set; } = 5;

    /// <summary>Requests one client network may make at once without a valid key.</summary>
    public int AnonymousBurst { get; set; } = 20;

    /// <summary>Whether the limits can be enforced as given (see <see cref="Requirement"/>).</summary>
    public bool IsUsable => PerKeyPerSecond >= 1 && AnonymousPerSecond >= 1 && PerKeyBurst >= 0 && AnonymousBurst >= 0;

    /// <summary>What usable limits are, for the configuration section <paramref name="section"/>.</summary>
    public static string Requirement(string section) =>
        $"{section}: PerKeyPerSecond and AnonymousPerSecond must be at least 1 and the bursts not negative.";
}

/// <summary>
/// Token buckets per API key and per anonymous client network for one API, counted in
/// <c>kafkaclicks_http_rate_limited_total{api, limit}</c> when they refuse. Buckets of keys and networks not seen for a
/// while are dropped by the limiter itself, so memory stays bounded by the callers of the last minutes.
/// </summary>
public sealed class CallerRateLimits : IDisposable
{
    private static readonly Counter<long> Limited = Problems.Meter.CreateCounter<long>(
        "kafkaclicks.http.rate_limited", "{request}", "Requests refused with 429 by API and limit: key or anonymous.");

    private readonly string _api;
    private readonly PartitionedRateLimiter<string> _keys;
    private readonly PartitionedRateLimiter<string> _anonymous;

    public CallerRateLimits(string api, RateLimitOptions options)
    {
        _api = api;
        _keys = Buckets(options.PerKeyPerSecond, options.PerKeyBurst);
        _anonymous = Buckets(options.AnonymousPerSecond, options.AnonymousBurst);
    }

    /// <summary>Takes a request from <paramref name="key"/>'s bucket (any stable name of an authenticated caller); false: refuse it with <see cref="TooManyRequests"/>.</summary>
    public bool TryKey(string key) => Take(_keys, key, "key");

    /// <summary>Takes a request from the bucket of the client network <paramref name="context"/> comes from.</summary>
    public bool TryAnonymous(HttpContext context) => Take(_anonymous, ClientNetwork.Of(context.Connection.RemoteIpAddress), "anonymous");

    /// <summary>The answer for a refused request: 429, reason <c>rate-limited</c>, and a Retry-After of one second.</summary>
    public static IResult TooManyRequests(HttpContext context)
    {
        context.Response.Headers.RetryAfter = "1";
        return Problems.Problem(StatusCodes.Status429TooManyRequests, "rate-limited",
            "Too many requests from this API key or client; retry after the Retry-After header's seconds.");
    }

    public void Dispose()
    {
        _keys.Dispose();
        _anonymous.Dispose();
    }

    private bool Take(PartitionedRateLimiter<string> limiter, string partition, string limit)
    {
        using var lease = limiter.AttemptAcquire(partition);
        if (lease.IsAcquired)
        {
            return true;
        }

        Limited.Add(1, new KeyValuePair<string, object?>("api", _api), new KeyValuePair<string, object?>("limit", limit));
        return false;
    }

    private static PartitionedRateLimiter<string> Buckets(int perSecond, int burst)
    {
        var options = new TokenBucketRateLimiterOptions
        {
            TokenLimit = Math.Max(1, Math.Max(burst, perSecond)),
            TokensPerPeriod = Math.Max(1, perSecond),
            ReplenishmentPeriod = TimeSpan.FromSeconds(1),
            QueueLimit = 0,
            AutoReplenishment = true,
        };
        return PartitionedRateLimiter.Create<string, string>(partition => RateLimitPartition.GetTokenBucketLimiter(partition, _ => options));
    }
}

/// <summary>Where a request comes from, at the granularity one party controls.</summary>
public static class ClientNetwork
{
    /// <summary>An IPv4 address as is, an IPv6 address as its /64 (one subscriber's whole network), "unknown" when absent.</summary>
    public static string Of(IPAddress? address)
    {
        if (address is null)
        {
            return "unknown";
        }

        address = Unmapped(address);
        return address.AddressFamily == AddressFamily.InterNetworkV6 ? Prefix(address, 64) : address.ToString();
    }

    /// <summary>
    /// The network of <paramref name="address"/> as a billing dispute desk keeps it without keeping the person: IPv4 /24,
    /// IPv6 /48, written as <c>203.0.113.0/24</c>; empty when unknown.
    /// </summary>
    public static string DisputePrefix(IPAddress? address)
    {
        if (address is null)
        {
            return string.Empty;
        }

        address = Unmapped(address);
        return Prefix(address, address.AddressFamily == AddressFamily.InterNetworkV6 ? 48 : 24);
    }

    private static IPAddress Unmapped(IPAddress address) => address.IsIPv4MappedToIPv6 ? address.MapToIPv4() : address;

    private static string Prefix(IPAddress address, int bits)
    {
        var bytes = address.GetAddressBytes();
        for (var i = 0; i < bytes.Length; i++)
        {
            var keep = Math.Clamp(bits - (i * 8), 0, 8);
            bytes[i] &= (byte)(0xff << (8 - keep));
        }

        return string.Create(CultureInfo.InvariantCulture, $"{new IPAddress(bytes)}/{bits}");
    }
}
