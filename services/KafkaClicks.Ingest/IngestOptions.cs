using System.ComponentModel.DataAnnotations;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.Ingest;

/// <summary>Section <c>Ingest</c>.</summary>
public sealed class IngestOptions
{
    public const string Section = "Ingest";

    /// <summary>Signing keys for impression tokens.</summary>
    [Required]
    public TokenOptions Tokens { get; set; } = new();

    /// <summary>API keys that ad-serving frontends present to POST /v1/impressions.</summary>
    public List<string> FrontendApiKeys { get; set; } = [];

    /// <summary>
    /// Base URL that click links in minted tokens point at. Required outside the Development environment: the request's
    /// Host header, which a caller chooses, is used only in Development and by the all-in-one demo.
    /// </summary>
    public string? PublicBaseUrl { get; set; }

    /// <summary>Limits on POST /v1/impressions per frontend key and per client network without a valid key.</summary>
    public RateLimitOptions RateLimits { get; set; } = new() { PerKeyPerSecond = 20_000, PerKeyBurst = 20_000 };

    /// <summary>Largest accepted request body, in bytes; larger requests get 413.</summary>
    [Range(256, 1 << 20)]
    public int MaxRequestBytes { get; set; } = 4096;

    /// <summary>How long a click waits for the broker's acknowledgement before it goes to the local spool instead.</summary>
    public TimeSpan ProduceTimeout { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>How long Redis may take to answer the dedupe check before the click is accepted unchecked.</summary>
    public TimeSpan DedupeTimeout { get; set; } = TimeSpan.FromMilliseconds(250);

    /// <summary>
    /// Slots of the in-memory ad cache, one ad each (about 210 bytes with a 50-character URL: 250,000 take ~53 MB); an
    /// ad whose slot another ad took is read from the local ad directory again.
    /// </summary>
    [Range(1_000, 100_000_000)]
    public int AdCacheEntries { get; set; } = 250_000;

    /// <summary>How long a cached ad is trusted before it is read again (an ad's URL may change).</summary>
    public TimeSpan AdCacheTtl { get; set; } = TimeSpan.FromMinutes(5);

    /// <summary>
    /// Longest time a click or an impression waits for PostgreSQL when its ad is in neither the cache nor the local
    /// directory (an ad created in the last second, an unknown id); beyond it the answer is 503 ad-lookup-unavailable.
    /// </summary>
    public TimeSpan AdLookupTimeout { get; set; } = TimeSpan.FromMilliseconds(500);

    /// <summary>The local, durable copy of the ads table that keeps clicks routed while PostgreSQL is down.</summary>
    public AdDirectoryOptions AdDirectory { get; set; } = new();

    /// <summary>When an ad counts as hot and how far its clicks are spread.</summary>
    public HotAdOptions HotAds { get; set; } = new();

    /// <summary>The durable local spool that takes clicks while the broker is unreachable.</summary>
    public SpoolOptions Spool { get; set; } = new();
}

/// <summary>Section <c>Ingest:Tokens</c>: several keys may be active at once, for rotation; new tokens use <see cref="ActiveKeyId"/>.</summary>
public sealed class TokenOptions
{
    /// <summary>Id of the key that signs new tokens; must be one of <see cref="Keys"/>.</summary>
    [Required]
    public string ActiveKeyId { get; set; } = "";

    /// <summary>Key id to base64 key (at least 32 bytes). Ids are 1 to 16 characters of [A-Za-z0-9_-].</summary>
    public Dictionary<string, string> Keys { get; set; } = [];
}
