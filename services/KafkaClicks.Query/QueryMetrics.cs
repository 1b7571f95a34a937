using System.Diagnostics.Metrics;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.Query;

/// <summary>The query role's meter.</summary>
internal static class QueryMetrics
{
    private static readonly Meter Meter = ServiceDefaultsExtensions.CreateMeter("Query");

    /// <summary>Cache lookups by result: hit, miss, bypass (a partial range, or the cache is off) or error (Redis unavailable).</summary>
    public static readonly Counter<long> Cache = Meter.CreateCounter<long>("kafkaclicks.query.cache", description: "Query response cache lookups by result");

    /// <summary>Requests answered 503 because no database slot freed up in time (queue full or queue timeout).</summary>
    public static readonly Counter<long> Overloaded = Meter.CreateCounter<long>("kafkaclicks.query.overloaded", description: "Query requests refused by reason: queue-full or queue-timeout");

    /// <summary>API keys looked up in the database (cache misses) by result: found or unknown; bounded per client network by the anonymous rate limit.</summary>
    public static readonly Counter<long> KeyLookups = Meter.CreateCounter<long>("kafkaclicks.query.key_lookups", description: "API keys looked up in the database");

    /// <summary>
    /// Top-ads answers across all advertisers by how they were computed: leaders (each minute's largest counts proved the
    /// answer) or scan (every minute row of the window).
    /// </summary>
    public static readonly Counter<long> TopAnswers = Meter.CreateCounter<long>("kafkaclicks.query.top_answers", description: "Top-ads answers across all advertisers by path: leaders or scan");

    public static void TopAnswered(string path) => TopAnswers.Add(1, new KeyValuePair<string, object?>("path", path));

    public static void CacheResult(string result) => Cache.Add(1, new KeyValuePair<string, object?>("result", result));
}
