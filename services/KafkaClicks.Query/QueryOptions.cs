using System.ComponentModel.DataAnnotations;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;

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

    /// <summary>
    /// Most of an advertiser's ads one page of an ad search (<c>GET /v1/advertisers/{id}/ads?q=</c>) looks at, in id
    /// order: the bound on what one search request costs whatever the advertiser's size. A page may so hold fewer
    /// matches than its limit, even none, and still have a next page.
    /// </summary>
    [Range(100, 1_000_000)]
    public int SearchScanAds { get; set; } = 10_000;

    /// <summary>
    /// How many of each minute's largest counts <c>GET /v1/top</c> across all advertisers reads (its leaders; at least
    /// the answer's limit). The answer sums the window of only the ads among them, and is kept when no other ad can rank
    /// higher; otherwise every minute row of the window is summed. Skewed traffic (a few ads taking most clicks) is
    /// answered from the leaders; evenly spread traffic is summed.
    /// </summary>
    [Range(1, 100_000)]
    public int TopLeadersPerMinute { get; set; } = 50;

    /// <summary>Whether answers whose range is entirely final are cached in Redis (needs ConnectionStrings:Redis).</summary>
    public bool CacheEnabled { get; set; } = true;

    /// <summary>How long a cached answer lives; reconciliation corrections reach cached answers after at most this long.</summary>
    [Range(typeof(TimeSpan), "00:00:01", "30.00:00:00", ParseLimitsInInvariantCulture = true, ConvertValueInInvariantCulture = true)]
    public TimeSpan CacheTtl { get; set; } = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Most database answers computed at once; the rest wait in a first-come queue. Queueing here rather than in
    /// PostgreSQL keeps the slowest answers close to the typical ones under load (benchmarks/HISTORY.md, query).
    /// 0: two per processor.
    /// </summary>
    [Range(0, 10_000)]
    public int MaxConcurrentQueries { get; set; }

    /// <summary><see cref="MaxConcurrentQueries"/>, with 0 resolved to two per processor.</summary>
    public int EffectiveMaxConcurrentQueries => MaxConcurrentQueries > 0 ? MaxConcurrentQueries : 2 * Environment.ProcessorCount;

    /// <summary>
    /// Most of the database slots the queries about one advertiser (its ads' clicks, its own, its top ads, its ads list)
    /// hold at once; its further queries wait in a first-come queue of their own (same <see cref="QueueLimit"/> and
    /// <see cref="QueueTimeout"/>) before they queue for a slot. So an advertiser with 100,000 ads, whose queries cost
    /// the most, cannot take every slot and hold everyone else's answers behind its own. Answers about no one advertiser
    /// (top ads across all of them, the advertisers list) take no share. 0: half of
    /// <see cref="EffectiveMaxConcurrentQueries"/>, at least one.
    /// </summary>
    [Range(0, 10_000)]
    public int MaxConcurrentQueriesPerAdvertiser { get; set; }

    /// <summary><see cref="MaxConcurrentQueriesPerAdvertiser"/>, with 0 resolved to half the slots (at least one).</summary>
    public int EffectiveMaxConcurrentQueriesPerAdvertiser =>
        MaxConcurrentQueriesPerAdvertiser > 0 ? MaxConcurrentQueriesPerAdvertiser : Math.Max(1, EffectiveMaxConcurrentQueries / 2);

    /// <summary>Most requests waiting for a database slot; beyond it, or after <see cref="QueueTimeout"/>, the answer is 503 overloaded.</summary>
    [Range(0, 1_000_000)]
    public int QueueLimit { get; set; } = 1_000;

    /// <summary>How long a request may wait for a database slot before it is answered 503 overloaded.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:10:00", ParseLimitsInInvariantCulture = true, ConvertValueInInvariantCulture = true)]
    public TimeSpan QueueTimeout { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long one database statement of a query may run (whole seconds, at least one); beyond it the statement is
    /// cancelled and the request answered 503 <c>query-timeout</c>, so a blocked or runaway query frees its slot.
    /// </summary>
    [Range(typeof(TimeSpan), "00:00:01", "00:10:00", ParseLimitsInInvariantCulture = true, ConvertValueInInvariantCulture = true)]
    public TimeSpan StatementTimeout { get; set; } = TimeSpan.FromSeconds(10);

    /// <summary>
    /// How long minute counts are kept: ranges that need minute rows (buckets under an hour, or day buckets in a zone
    /// whose midnights fall inside an hour) may not start earlier. Read from the sink's <c>Sink:MinuteRetention</c>, so
    /// both roles agree when they share their configuration.
    /// </summary>
    public TimeSpan MinuteRetention { get; set; } = SharedDefaults.MinuteRetention;

    /// <summary>How long hourly and daily rollups are kept (<c>Sink:RollupRetention</c>): no range may start earlier.</summary>
    public TimeSpan RollupRetention { get; set; } = SharedDefaults.RollupRetention;

    /// <summary>
    /// Limits per API key (an advertiser's, or an admin key) and per client network without a valid key. The dashboard
    /// makes about one request per second per open page.
    /// </summary>
    public RateLimitOptions RateLimits { get; set; } = new() { PerKeyPerSecond = 50, PerKeyBurst = 100 };

    /// <summary>How long a cache read may take before the answer comes from the database instead.</summary>
    [Range(typeof(TimeSpan), "00:00:00.001", "00:01:00", ParseLimitsInInvariantCulture = true, ConvertValueInInvariantCulture = true)]
    public TimeSpan CacheTimeout { get; set; } = TimeSpan.FromMilliseconds(100);
}
