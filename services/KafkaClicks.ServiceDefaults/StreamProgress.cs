using KafkaClicks.Contracts;
using Npgsql;

namespace KafkaClicks.ServiceDefaults;

/// <summary>Reads the completeness watermark the sink records in <see cref="Tables.StreamProgress"/>.</summary>
public static class StreamProgress
{
    /// <summary>How recently a clicks.minute partition must have reported finals to count in <see cref="CompleteThroughAsync"/>.</summary>
    public static readonly TimeSpan ReportedWithin = TimeSpan.FromMinutes(10);

    /// <summary>
    /// Every minute before this instant has its final count stored: the least of the per-partition final watermarks
    /// the sink records, over the partitions that reported within <see cref="ReportedWithin"/>; null when none did.
    /// </summary>
    public static async Task<DateTime?> CompleteThroughAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand(
            $"SELECT min(final_through) FROM {Tables.StreamProgress} WHERE updated_at > now() - $1::interval");
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = ReportedWithin });
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime through ? DateTime.SpecifyKind(through, DateTimeKind.Utc) : null;
    }
}
