using System.Globalization;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// Instants as the query API and the command line take them: ISO-8601 (<c>2026-11-29</c>, <c>2026-11-29T10:00Z</c>,
/// <c>2026-11-29T10:00:00.5+01:00</c>), UTC when no offset is given, between 2000-01-01 and 9000-01-01 UTC. The bounds
/// keep every range computed from an instant (a default start, buckets widened to whole days) inside what .NET and
/// PostgreSQL can represent; no click is older than 2000.
/// </summary>
public static class Instants
{
    public static readonly DateTimeOffset Earliest = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
    public static readonly DateTimeOffset Latest = new(9000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    /// <summary>What a caller is told when an instant is not accepted.</summary>
    public const string Expected = "an ISO-8601 instant between 2000-01-01 and 9000-01-01 (e.g. 2026-11-29T10:00:00Z)";

    private static readonly string[] Formats =
    [
        "yyyy-MM-dd'T'HH:mm:ss.FFFFFFFK", "yyyy-MM-dd'T'HH:mmK", "yyyy-MM-dd' 'HH:mm:ss.FFFFFFFK", "yyyy-MM-dd' 'HH:mmK", "yyyy-MM-ddK",
    ];

    /// <summary>Parses <paramref name="text"/>; false when it is not ISO-8601 or lies outside the accepted years.</summary>
    public static bool TryParse(string? text, out DateTimeOffset value)
    {
        if (DateTimeOffset.TryParseExact(Normalized(text), Formats, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value)
            && value >= Earliest && value < Latest)
        {
            return true;
        }

        value = default;
        return false;
    }

    /// <summary>
    /// RFC 3339 allows a lowercase <c>t</c> and <c>z</c> and any number of fractional digits (Go writes nine); .NET reads
    /// seven at most, so the rest, below 100 ns, is dropped.
    /// </summary>
    private static string? Normalized(string? text)
    {
        if (text is null)
        {
            return null;
        }

        text = text.Trim().ToUpperInvariant();
        var dot = text.IndexOf('.', StringComparison.Ordinal);
        if (dot < 0)
        {
            return text;
        }

        var end = dot + 1;
        while (end < text.Length && char.IsAsciiDigit(text[end]))
        {
            end++;
        }

        return end - dot - 1 > 7 ? string.Concat(text.AsSpan(0, dot + 8), text.AsSpan(end)) : text;
    }
}
