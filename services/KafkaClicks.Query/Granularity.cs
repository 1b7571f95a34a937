namespace KafkaClicks.Query;

/// <summary>The bucket sizes the query API answers in.</summary>
public static class Granularity
{
    private static readonly Dictionary<string, TimeSpan> Known = new(StringComparer.Ordinal)
    {
        ["1m"] = TimeSpan.FromMinutes(1),
        ["5m"] = TimeSpan.FromMinutes(5),
        ["15m"] = TimeSpan.FromMinutes(15),
        ["1h"] = TimeSpan.FromHours(1),
        ["1d"] = TimeSpan.FromDays(1),
    };

    public static IReadOnlyCollection<string> Names => Known.Keys;

    public static bool TryParse(string? value, out TimeSpan bucket) => Known.TryGetValue(value ?? "1m", out bucket);
}
