using KafkaClicks.Contracts;
using KafkaClicks.Migrations;
using Npgsql;
using NpgsqlTypes;

namespace KafkaClicks.Sink;

/// <summary>Recomputes ad_clicks_hourly, advertiser_clicks_hourly and ad_clicks_daily for a range, on either storage flavor.</summary>
public static class Rollups
{
    /// <summary>
    /// Refreshes the hours overlapping [from, to) and the days containing them. The connection must not be in a
    /// transaction: TimescaleDB's refresh_continuous_aggregate refuses to run inside one.
    /// </summary>
    public static async Task RefreshAsync(NpgsqlConnection connection, StorageFlavor flavor, DateTime from, DateTime to, CancellationToken cancellationToken)
    {
        if (flavor == StorageFlavor.Timescale)
        {
            var (hourFrom, hourTo, dayFrom, dayTo) = TimescaleWindows(from, to);
            await CallRefreshAsync(connection, Tables.AdClicksHourly, hourFrom, hourTo, cancellationToken);
            await CallRefreshAsync(connection, Tables.AdvertiserClicksHourly, hourFrom, hourTo, cancellationToken);
            await CallRefreshAsync(connection, Tables.AdClicksDaily, dayFrom, dayTo, cancellationToken);
            return;
        }

        await using var command = new NpgsqlCommand("SELECT refresh_ad_clicks_rollup_hours($1, $2)", connection);
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = from });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = to });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// The windows TimescaleDB's continuous aggregates are refreshed over for [from, to). It refreshes only buckets wholly
    /// inside a window, so hours are widened to whole hours and days to whole UTC days.
    /// </summary>
    internal static (DateTime HourFrom, DateTime HourTo, DateTime DayFrom, DateTime DayTo) TimescaleWindows(DateTime from, DateTime to)
    {
        return (TimeBuckets.HourOf(from), TimeBuckets.CeilingHour(to), from.Date, TimeBuckets.CeilingDay(to));
    }

    /// <summary>
    /// Refreshes the rollups of just <paramref name="adIds"/> for the hours overlapping [from, to) and the days
    /// containing them (the reconciler's corrections touch a few ads of an hour that holds many). TimescaleDB's
    /// continuous aggregates refresh by time only, so there the whole range is refreshed.
    /// </summary>
    public static async Task RefreshAdsAsync(NpgsqlConnection connection, StorageFlavor flavor, long[] adIds, DateTime from, DateTime to, CancellationToken cancellationToken)
    {
        if (flavor == StorageFlavor.Timescale)
        {
            await RefreshAsync(connection, flavor, from, to, cancellationToken);
            return;
        }

        await using var command = new NpgsqlCommand("SELECT refresh_ad_clicks_rollups_for_ads($1, $2, $3)", connection);
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = adIds });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = from });
        command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = to });
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    /// <summary>
    /// Marks the rollups of each (ad, minute) of <paramref name="changes"/> dirty, for <see cref="RollupRefreshJob"/>:
    /// plain PostgreSQL appends one row per UTC hour with the ads changed in it to rollup_ad_changes, TimescaleDB marks
    /// each UTC hour in rollup_dirty (the database's <c>mark_rollups_dirty</c>). Run it in the transaction that changes
    /// those minutes: the mark then exists exactly when the change does, so the rollups are recomputed even if the
    /// writer dies right after its commit.
    /// </summary>
    public static NpgsqlBatchCommand MarkDirty(IEnumerable<(long AdId, DateTime Minute)> changes)
    {
        var marks = new HashSet<(DateTime Hour, long AdId)>();
        foreach (var (adId, minute) in changes)
        {
            marks.Add((TimeBuckets.HourOf(minute), adId));
        }

        var command = new NpgsqlBatchCommand("SELECT mark_rollups_dirty($1, $2)");
        command.Parameters.Add(new NpgsqlParameter<DateTime[]> { TypedValue = [.. marks.Select(m => m.Hour)] });
        command.Parameters.Add(new NpgsqlParameter<long[]> { TypedValue = [.. marks.Select(m => m.AdId)] });
        return command;
    }

    /// <summary>How many ads one call of refresh_ad_clicks_rollup_ads takes at most (beyond its first row of changes): one transaction's worth.</summary>
    public const int AdMarksPerRefresh = 20_000;

    /// <summary>
    /// Plain PostgreSQL: refreshes the rollups of every (hour, ad) in the rows of rollup_ad_changes written before this
    /// call (hours before <paramref name="oldest"/> are dropped: their minutes are gone), in transactions of about
    /// <see cref="AdMarksPerRefresh"/> ads, and deletes those rows; returns how many distinct (hour, ad) pairs were
    /// recomputed. Rows written meanwhile stay for the next call. TimescaleDB marks whole hours only
    /// (<see cref="MarkDirty"/>), so there is nothing to do.
    /// </summary>
    public static async Task<long> RefreshMarkedAdsAsync(NpgsqlConnection connection, StorageFlavor flavor, DateTime oldest, CancellationToken cancellationToken)
    {
        if (flavor == StorageFlavor.Timescale)
        {
            return 0;
        }

        long upto;
        await using (var newest = new NpgsqlCommand("SELECT coalesce(max(id), 0) FROM rollup_ad_changes", connection))
        {
            upto = (long)(await newest.ExecuteScalarAsync(cancellationToken))!;
        }

        var refreshed = 0L;
        while (true)
        {
            await using var command = new NpgsqlCommand("SELECT taken, refreshed, more FROM refresh_ad_clicks_rollup_ads($1, $2, $3)", connection);
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = upto });
            command.Parameters.Add(new NpgsqlParameter<int> { TypedValue = AdMarksPerRefresh });
            command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = oldest, NpgsqlDbType = NpgsqlDbType.TimestampTz });
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            await reader.ReadAsync(cancellationToken);
            refreshed += reader.GetInt32(1);
            if (reader.GetInt32(0) == 0 || !reader.GetBoolean(2))
            {
                return refreshed;
            }
        }
    }

    /// <summary>Attempts of one continuous aggregate refresh that another refresh of an overlapping window refused.</summary>
    private const int RefreshAttempts = 40;

    private static async Task CallRefreshAsync(NpgsqlConnection connection, string aggregate, DateTime from, DateTime to, CancellationToken cancellationToken)
    {
        for (var attempt = 1; ; attempt++)
        {
            try
            {
                await using var command = new NpgsqlCommand($"CALL refresh_continuous_aggregate('{aggregate}', $1, $2)", connection);
                command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = from });
                command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = to });
                await command.ExecuteNonQueryAsync(cancellationToken);
                return;
            }
            catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.LockNotAvailable && attempt < RefreshAttempts)
            {
                // "could not refresh continuous aggregate due to a concurrent refresh": TimescaleDB refuses, rather than
                // waits for, a refresh whose window overlaps one in progress (its own refresh policy, or the job of
                // another sink process). That refresh may have started before our minutes were committed, so ours is
                // still needed: wait for it and try again (up to about half a minute; after that the caller's marks
                // stay dirty and the next run retries).
                await Task.Delay(TimeSpan.FromMilliseconds(Math.Min(1000, 50 * attempt)), cancellationToken);
            }
        }
    }
}
