using System.CommandLine.Parsing;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.Cli.Commands;

/// <summary>Instants on the command line: ISO-8601, UTC when no offset is given.</summary>
public static class CliTime
{
    public static DateTime? Parse(ArgumentResult result)
    {
        var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : null;
        if (Instants.TryParse(text, out var value))
        {
            return value.UtcDateTime;
        }

        result.AddError($"'{text}' is not {Instants.Expected}");
        return null;
    }
}
