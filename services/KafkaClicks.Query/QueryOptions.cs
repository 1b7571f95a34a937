using System.ComponentModel.DataAnnotations;

namespace KafkaClicks.Query;

/// <summary>Section <c>Query</c>.</summary>
public sealed class QueryOptions
{
    public const string Section = "Query";

    /// <summary>API keys that see every advertiser's data.</summary>
    public List<string> AdminApiKeys { get; set; } = [];

    /// <summary>Most points one response may hold; a longer range needs a coarser granularity.</summary>
    [Range(1, 1_000_000)]
    public int MaxPoints { get; set; } = 10_080;

    /// <summary>Most points of a per-ad breakdown (ads x buckets).</summary>
    [Range(1, 10_000_000)]
    public int MaxBreakdownPoints { get; set; } = 200_000;

    /// <summary>Whether answers whose range is entirely final are cached in Redis (needs ConnectionStrings:Redis).</summary>
    public bool CacheEnabled { get; set; } = true;

    /// <summary>How long a cached answer lives; reconciliation corrections reach cached answers after at most this long.</summary>
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>How long a cache read may take before the answer comes from the database instead.</summary>
    public TimeSpan CacheTimeout { get; set; } = TimeSpan.FromMilliseconds(100);
}
