using Npgsql;
using NpgsqlTypes;

namespace KafkaClicks.Query;

/// <summary>One bucket of a click series.</summary>
public sealed record ClickPoint(DateTimeOffset T, long Clicks, bool Final);

/// <summary>Reads click series and the completeness watermark from Postgres. Salts are summed here.</summary>
public sealed class ClickSeriesStore
{
    private static readonly DateTimeOffset Origin = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);
    private readonly NpgsqlDataSource _dataSource;

    public ClickSeriesStore(NpgsqlDataSource dataSource) => _dataSource = dataSource;

    /// <summary>The advertiser owning the ad, or null when there is no such ad.</summary>
    public async Task<long?> AdOwnerAsync(long adId, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("SELECT advertiser_id FROM ads WHERE ad_id = $1");
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = adId });
        return await command.ExecuteScalarAsync(cancellationToken) as long?;
    }

    /// <summary>Buckets of <paramref name="bucket"/> over [from, to) for one ad; buckets with no clicks are absent.</summary>
    public async Task<IReadOnlyList<ClickPoint>> AdSeriesAsync(long adId, DateTimeOffset from, DateTimeOffset to, TimeSpan bucket, CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand("""
            SELECT date_bin($4, minute, $5) AS t, sum(clicks)::bigint, bool_and(final)
            FROM ad_clicks_minute
            WHERE ad_id = $1 AND minute >= $2 AND minute < $3
            GROUP BY 1
            ORDER BY 1
            """);
        command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = adId });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = from, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = to, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        command.Parameters.Add(new NpgsqlParameter<TimeSpan> { TypedValue = bucket });
        command.Parameters.Add(new NpgsqlParameter<DateTimeOffset> { TypedValue = Origin, NpgsqlDbType = NpgsqlDbType.TimestampTz });
        var points = new List<ClickPoint>();
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            points.Add(new ClickPoint(reader.GetFieldValue<DateTimeOffset>(0), reader.GetInt64(1), reader.GetBoolean(2)));
        }

        return points;
    }

    /// <summary>
    /// Every minute before this instant has its final count in the database: the least of the per-partition
    /// final watermarks the sink records, over partitions that reported in the last 10 minutes.
    /// </summary>
    public async Task<DateTimeOffset?> CompleteThroughAsync(CancellationToken cancellationToken)
    {
        await using var command = _dataSource.CreateCommand(
            "SELECT min(final_through) FROM stream_progress WHERE updated_at > now() - interval '10 minutes'");
        var value = await command.ExecuteScalarAsync(cancellationToken);
        return value is DateTime dt ? new DateTimeOffset(DateTime.SpecifyKind(dt, DateTimeKind.Utc)) : null;
    }
}
