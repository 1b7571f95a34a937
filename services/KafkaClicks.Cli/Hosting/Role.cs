namespace KafkaClicks.Cli.Hosting;

/// <summary>The roles one kafkaclicks process can host.</summary>
[Flags]
public enum Role
{
    None = 0,
    Ingest = 1,
    Aggregator = 2,
    Sink = 4,
    Query = 8,
    Reconciler = 16,
    All = Ingest | Aggregator | Sink | Query | Reconciler,
}

public static class Roles
{
    /// <summary>Parses "ingest,aggregator,..." (case-insensitive); the error names the unknown role and the known ones.</summary>
    public static bool TryParse(string? text, out Role roles, out string? error)
    {
        roles = Role.None;
        error = null;
        foreach (var part in (text ?? "").Split(',', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries))
        {
            if (!Enum.TryParse<Role>(part, ignoreCase: true, out var role) || role is Role.None or Role.All || int.TryParse(part, out _))
            {
                error = $"unknown role '{part}'; roles are ingest, aggregator, sink, query, reconciler";
                return false;
            }

            roles |= role;
        }

        if (roles == Role.None)
        {
            error = "no role given; roles are ingest, aggregator, sink, query, reconciler";
            return false;
        }

        return true;
    }
}
