using System.Net;
using System.Text.Json;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Writes minute rows, dirty marks and the completeness watermark straight into a test database, as the sink would.</summary>
public static class ClickRows
{
    public static DateTimeOffset Minute(DateTimeOffset t) => new(t.Ticks - (t.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero);

    public static DateTimeOffset Hour(DateTimeOffset t) => new(t.Ticks - (t.Ticks % TimeSpan.TicksPerHour), TimeSpan.Zero);

    public static DateTimeOffset Day(DateTimeOffset t) => new(t.UtcDateTime.Date, TimeSpan.Zero);

    public static string Iso(DateTimeOffset t) => Uri.EscapeDataString(t.ToString("O"));

    /// <summary>A minute row and its rollups' dirty mark, as the sink writes them (in one transaction).</summary>
    public static async Task InsertAsync(TestDatabase db, long adId, DateTimeOffset minute, long clicks, short salt = 0, bool final = true)
    {
        await db.ExecuteAsync("SELECT ensure_ad_clicks_minute_partitions($1, $1 + interval '1 minute')", minute);
        await db.ExecuteAsync(
            "INSERT INTO ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at) VALUES ($1, $2, $3, $4, $5, now())",
            adId, minute, salt, clicks, final);
        await db.ExecuteAsync(
            "SELECT mark_rollups_dirty(ARRAY[date_bin('1 hour', $1::timestamptz, timestamptz '2000-01-01 00:00:00+00')], ARRAY[$2::bigint])",
            minute, adId);
    }

    /// <summary>Runs the sink's rollup refresh job once: every dirty hour is recomputed and unmarked.</summary>
    public static Task<int> RefreshRollupsAsync(TestDatabase db) =>
        new RollupRefreshJob(db.DataSource, Options.Create(new SinkOptions()), TimeProvider.System, NullLogger<RollupRefreshJob>.Instance).RunOnceAsync(default);

    /// <summary>Sets completeThrough, as the sink records the marker of a one-task aggregator on a one-partition clicks.minute.</summary>
    public static Task CompleteThroughAsync(TestDatabase db, DateTimeOffset finalThrough) =>
        db.ExecuteAsync(CompleteThroughSql, finalThrough);

    /// <summary>The statement of <see cref="CompleteThroughAsync"/> (parameter $1: final_through), for tests without a <see cref="TestDatabase"/>.</summary>
    public const string CompleteThroughSql = """
        INSERT INTO stream_progress (topic, task, partition, tasks, partitions, final_through, updated_at)
        VALUES ('clicks.minute', 0, 0, 1, 1, $1, now())
        ON CONFLICT (topic, task, partition) DO UPDATE SET final_through = EXCLUDED.final_through, updated_at = now()
        """;

    /// <summary>Locks the minutes table in <paramref name="transaction"/> until it ends, as a migration or maintenance job would.</summary>
    public static async Task LockMinutesAsync(Npgsql.NpgsqlConnection connection, Npgsql.NpgsqlTransaction transaction)
    {
        await using var lockMinutes = new Npgsql.NpgsqlCommand("LOCK TABLE ad_clicks_minute IN ACCESS EXCLUSIVE MODE", connection, transaction);
        await lockMinutes.ExecuteNonQueryAsync();
    }

    /// <summary>Until PostgreSQL shows <paramref name="queries"/> queries of this database waiting for a lock, at most 10 s.</summary>
    public static async Task WaitForQueryBlockedOnLockAsync(TestDatabase database, int queries = 1)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (await database.ScalarAsync<long>(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'") < queries)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{queries} queries did not wait on a lock within 10 s");
            await Task.Delay(50);
        }
    }

    /// <summary>GET as <paramref name="apiKey"/>, expecting 200; the parsed body.</summary>
    public static async Task<JsonElement> GetJsonAsync(ProductHost host, string path, string apiKey)
    {
        using var response = await host.GetAsync(path, apiKey);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == HttpStatusCode.OK, $"{path}: {(int)response.StatusCode} {body}");
        using var json = JsonDocument.Parse(body);
        return json.RootElement.Clone();
    }

    /// <summary>The (ad, clicks) of every ad of a top-ads answer, in order.</summary>
    public static (long AdId, long Clicks)[] TopAds(JsonElement answer) =>
        answer.GetProperty("ads").EnumerateArray().Select(a => (a.GetProperty("adId").GetInt64(), a.GetProperty("clicks").GetInt64())).ToArray();

    /// <summary>The clicks of every point, in order.</summary>
    public static long[] Clicks(JsonElement answer) => answer.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("clicks").GetInt64()).ToArray();

    /// <summary>The final flag of every point, in order.</summary>
    public static bool[] Finals(JsonElement answer) => answer.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("final").GetBoolean()).ToArray();

    /// <summary>The start of every point, in order.</summary>
    public static DateTimeOffset[] Starts(JsonElement answer) => answer.GetProperty("points").EnumerateArray().Select(p => p.GetProperty("t").GetDateTimeOffset()).ToArray();

    /// <summary>An array of <paramref name="length"/> zeros with the given values at the given indexes.</summary>
    public static long[] Expected(int length, params (int Index, long Clicks)[] values)
    {
        var expected = new long[length];
        foreach (var (index, clicks) in values)
        {
            expected[index] = clicks;
        }

        return expected;
    }
}
