using KafkaClicks.Contracts;
using Npgsql;

namespace KafkaClicks.ServiceDefaults;

/// <summary>Reads the completeness watermark the sink records in <see cref="Tables.StreamProgress"/>.</summary>
public static class StreamProgress
{
    /// <summary>
    /// Every minute before this instant has its final count stored: the least final_through over every (aggregator task,
    /// clicks.minute partition) pair of the newest layout the aggregator's progress markers declare (tasks x partitions
    /// pairs); null while any pair has not reported, so a task that is restoring, stalled or gone holds it back.
    /// </summary>
    public static async Task<DateTime?> CompleteThroughAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        await using var command = dataSource.CreateCommand($"""
            WITH layout AS (SELECT tasks, partitions FROM {Tables.StreamProgress} ORDER BY updated_at DESC LIMIT 1)
            SELECT CASE WHEN count(*) = max(l.tasks * l.partitions) THEN min(p.final_through) END
            FROM {Tables.StreamProgress} p
            JOIN layout l ON p.tasks = l.tasks AND p.partitions = l.partitions AND p.task < l.tasks AND p.partition < l.partitions
            """);
        return await command.ExecuteScalarAsync(cancellationToken) is DateTime through ? DateTime.SpecifyKind(through, DateTimeKind.Utc) : null;
    }
}
