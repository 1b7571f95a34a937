namespace KafkaClicks.Query;

/// <summary>Section <c>Query</c>.</summary>
public sealed class QueryOptions
{
    public const string Section = "Query";

    /// <summary>API keys that see every advertiser's data.</summary>
    public List<string> AdminApiKeys { get; set; } = [];

    /// <summary>Most points one response may hold; a longer range needs a coarser granularity.</summary>
    public int MaxPoints { get; set; } = 10_080;
}
