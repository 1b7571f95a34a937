using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using static KafkaClicks.IntegrationTests.Infrastructure.ClickRows;

namespace KafkaClicks.IntegrationTests.Query;

/// <summary>
/// GET /v1/top across all advertisers is answered from each minute's largest counts (its leaders) when they prove the
/// answer; these check that the answer is always the one summing every minute row gives, including for the ads the
/// leaders do not show.
/// </summary>
public class TopAdsTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const string Admin = ProductHost.AdminKey;
    private const string TopAnswers = "kafkaclicks_query_top_answers_total";

    [Fact]
    public async Task An_ad_that_leads_no_minute_still_tops_the_window_when_its_minutes_add_up()
    {
        // One leader per minute: each minute's leader is a different ad with 20 clicks, while ad 100 has 5 in each of
        // the 10 minutes (50 in all). The leaders alone would answer ad 101 with 20.
        await using var host = await StartAsync(leadersPerMinute: 1);
        await host.AddAdvertiserAsync(1, [100, .. Enumerable.Range(101, 10).Select(i => (long)i)]);
        var now = Minute(DateTimeOffset.UtcNow);
        var rows = new List<(long Ad, DateTimeOffset Minute, short Salt, long Clicks)>();
        for (var m = 1; m <= 10; m++)
        {
            rows.Add((100, now.AddMinutes(-m), 0, 5));
            rows.Add((100 + m, now.AddMinutes(-m), 0, 20));
        }

        await InsertRowsAsync(host.Database, rows);

        Assert.Equal([(100L, 50L)], TopAds(await GetJsonAsync(host, "/v1/top?window=15m&limit=1", Admin)));
        var three = await GetJsonAsync(host, "/v1/top?window=15m&limit=3", Admin);
        Assert.Equal(Expected(rows, three, 3), TopAds(three));
    }

    [Fact]
    public async Task An_ad_whose_salt_rows_each_trail_the_leaders_still_tops_the_window()
    {
        // Two leaders per minute: ad 200 (30 clicks) and ad 210 + m (11). Ad 201 is hot: four salt rows of 10 clicks in
        // each minute, every row below the second leader, so it leads no minute, yet it has 40 a minute to ad 200's 30.
        // Unless every salted ad of the window is summed too, the leaders would prove ad 200 (90 clicks, against a bound
        // of 33 for the rest).
        await using var host = await StartAsync(leadersPerMinute: 2);
        await host.AddAdvertiserAsync(2, [200, 201, .. Enumerable.Range(211, 3).Select(i => (long)i)]);
        var now = Minute(DateTimeOffset.UtcNow);
        var rows = new List<(long Ad, DateTimeOffset Minute, short Salt, long Clicks)>();
        for (var m = 1; m <= 3; m++)
        {
            rows.Add((200, now.AddMinutes(-m), 0, 30));
            rows.Add((210 + m, now.AddMinutes(-m), 0, 11));
            for (short salt = 0; salt < 4; salt++)
            {
                rows.Add((201, now.AddMinutes(-m), salt, 10));
            }
        }

        await InsertRowsAsync(host.Database, rows);

        Assert.Equal([(201L, 120L)], TopAds(await GetJsonAsync(host, "/v1/top?window=5m&limit=1", Admin)));
    }

    [Fact]
    public async Task Skewed_traffic_is_answered_from_the_leaders_and_equals_the_sum_of_every_row()
    {
        // 400 ads, 3,000 clicks a minute for 12 minutes drawn Zipf-like (rank r with weight 1/r), the three hottest ads
        // salted four ways: the shape of ad traffic, where 50 leaders a minute settle the answer.
        await using var host = await StartAsync(leadersPerMinute: 50);
        var ads = Enumerable.Range(1, 400).Select(i => 1_000L + i).ToArray();
        await host.AddAdvertiserAsync(3, ads);
        var random = new Random(22);
        var weights = ads.Select((_, i) => 1.0 / (i + 1)).ToArray();
        var rows = Draw(random, ads, weights, Minute(DateTimeOffset.UtcNow).AddMinutes(-11), minutes: 12, clicksPerMinute: 3_000, saltedAds: 3);
        await InsertRowsAsync(host.Database, rows);

        var before = await MetricsScraper.ReadAsync(host.Http, TopAnswers, "path", "leaders");
        foreach (var (window, limit) in new[] { (1, 10), (5, 5), (15, 10), (60, 3) })
        {
            var answer = await GetJsonAsync(host, $"/v1/top?window={window}m&limit={limit}", Admin);
            Assert.Equal(Expected(rows, answer, limit), TopAds(answer));
        }

        Assert.Equal(before + 4, await MetricsScraper.ReadFreshAsync(host.Http, TopAnswers, "path", "leaders"));
    }

    [Fact]
    public async Task Evenly_spread_traffic_is_summed_from_every_row()
    {
        // 300 ads with 1-3 clicks each in each of 10 minutes: no few ads stand out, so the leaders prove nothing and the
        // query sums the window instead.
        await using var host = await StartAsync(leadersPerMinute: 10);
        var ads = Enumerable.Range(1, 300).Select(i => 5_000L + i).ToArray();
        await host.AddAdvertiserAsync(4, ads);
        var random = new Random(23);
        var now = Minute(DateTimeOffset.UtcNow);
        var rows = new List<(long Ad, DateTimeOffset Minute, short Salt, long Clicks)>();
        for (var m = 1; m <= 10; m++)
        {
            rows.AddRange(ads.Select(ad => (ad, now.AddMinutes(-m), (short)0, (long)random.Next(1, 4))));
        }

        await InsertRowsAsync(host.Database, rows);

        var scans = await MetricsScraper.ReadAsync(host.Http, TopAnswers, "path", "scan");
        var answer = await GetJsonAsync(host, "/v1/top?window=15m&limit=10", Admin);
        Assert.Equal(Expected(rows, answer, 10), TopAds(answer));
        Assert.Equal(scans + 1, await MetricsScraper.ReadFreshAsync(host.Http, TopAnswers, "path", "scan"));
    }

    private Task<ProductHost> StartAsync(int leadersPerMinute) =>
        ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            ["Query:TopLeadersPerMinute"] = leadersPerMinute.ToString(System.Globalization.CultureInfo.InvariantCulture),
            ["Query:CacheEnabled"] = "false",
        });

    /// <summary>
    /// Clicks of <paramref name="minutes"/> minutes from <paramref name="first"/>, each minute's drawn over the ads by
    /// weight; the first <paramref name="saltedAds"/> ads spread over four salts.
    /// </summary>
    private static List<(long Ad, DateTimeOffset Minute, short Salt, long Clicks)> Draw(
        Random random, long[] ads, double[] weights, DateTimeOffset first, int minutes, int clicksPerMinute, int saltedAds)
    {
        var cumulative = new double[weights.Length];
        var sum = 0.0;
        for (var i = 0; i < weights.Length; i++)
        {
            cumulative[i] = sum += weights[i];
        }

        var rows = new List<(long Ad, DateTimeOffset Minute, short Salt, long Clicks)>();
        for (var m = 0; m < minutes; m++)
        {
            var counts = new Dictionary<(int Ad, short Salt), long>();
            for (var c = 0; c < clicksPerMinute; c++)
            {
                var index = Array.BinarySearch(cumulative, random.NextDouble() * sum);
                var ad = index >= 0 ? index : ~index;
                var salt = ad < saltedAds ? (short)random.Next(4) : (short)0;
                counts[(ad, salt)] = counts.GetValueOrDefault((ad, salt)) + 1;
            }

            rows.AddRange(counts.Select(kv => (ads[kv.Key.Ad], first.AddMinutes(m), kv.Key.Salt, kv.Value)));
        }

        return rows;
    }

    /// <summary>The minute rows, in one statement.</summary>
    private static async Task InsertRowsAsync(TestDatabase db, IReadOnlyList<(long Ad, DateTimeOffset Minute, short Salt, long Clicks)> rows)
    {
        await db.ExecuteAsync("SELECT ensure_ad_clicks_minute_partitions($1, $2)", rows.Min(r => r.Minute), rows.Max(r => r.Minute).AddMinutes(1));
        await db.ExecuteAsync(
            """
            INSERT INTO ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at)
            SELECT ad, minute, salt, clicks, false, now()
            FROM unnest($1::bigint[], $2::timestamptz[], $3::smallint[], $4::bigint[]) AS r (ad, minute, salt, clicks)
            """,
            rows.Select(r => r.Ad).ToArray(), rows.Select(r => r.Minute).ToArray(), rows.Select(r => r.Salt).ToArray(), rows.Select(r => r.Clicks).ToArray());
    }

    /// <summary>
    /// The top <paramref name="limit"/> ads by the sum of every row in the answer's window (the minute may have turned
    /// since the rows were written), ties by ad id: what the answer must be.
    /// </summary>
    private static (long AdId, long Clicks)[] Expected(IEnumerable<(long Ad, DateTimeOffset Minute, short Salt, long Clicks)> rows, JsonElement answer, int limit)
    {
        var (from, to) = (answer.GetProperty("from").GetDateTimeOffset(), answer.GetProperty("to").GetDateTimeOffset());
        return rows.Where(r => r.Minute >= from && r.Minute < to).GroupBy(r => r.Ad).Select(g => (AdId: g.Key, Clicks: g.Sum(r => r.Clicks)))
            .OrderByDescending(a => a.Clicks).ThenBy(a => a.AdId).Take(limit).ToArray();
    }
}
