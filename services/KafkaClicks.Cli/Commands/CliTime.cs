using System.CommandLine.Parsing;
using System.Globalization;

namespace KafkaClicks.Cli.Commands;

/// <summary>Instants on the command line: ISO-8601, UTC when no offset is given.</summary>
public static class CliTime
{
    public static DateTime? Parse(ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : null;
        if (text is not null && DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture,
                DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out var value))
        {
            return value.UtcDateTime;
        }

        result.AddError($"'{text}' is not an ISO-8601 instant (e.g. 2026-11-29T10:00:00Z)");
        return null;
    }
}
