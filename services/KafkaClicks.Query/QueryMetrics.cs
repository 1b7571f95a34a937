using System.Diagnostics.Metrics;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.Query;

/// <summary>The query role's meter.</summary>
internal static class QueryMetrics
{
    private static readonly Meter Meter = ServiceDefaultsExtensions.CreateMeter("Query");

    /// <summary>Cache lookups by result: hit, miss, bypass (a partial range, or the cache is off) or error (Redis unavailable).</summary>
    public static readonly Counter<long> Cache = Meter.CreateCounter<long>("kafkaclicks.query.cache", description: "Query response cache lookups by result");

    public static void CacheResult(string result) => Cache.Add(1, new KeyValuePair<string, object?>("result", result));
}
