using System.Globalization;
using System.Net;
using System.Net.Http.Json;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using static KafkaClicks.IntegrationTests.Infrastructure.ClickRows;

namespace KafkaClicks.IntegrationTests.Query;

public class QueryApiTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const string Admin = ProductHost.AdminKey;

    // Three whole UTC days back, so every day in these tests is over and none is today.
    private static readonly DateTimeOffset Base = Day(DateTimeOffset.UtcNow).AddDays(-3);

    [Fact]
    public async Task Every_granularity_sums_salts_into_hand_computed_buckets()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        await host.AddAdvertiserAsync(1, 101);
        foreach (var (minute, clicks, salt) in new (double Minute, long Clicks, short Salt)[]
        {
            (0, 3, 0), (0, 4, 1), (4, 2, 0), (5, 5, 0), (14, 1, 0), (15, 6, 3), (59, 10, 0), (60, 20, 0), (330, 8, 0), (1440 + 120, 9, 0),
        })
        {
            await InsertAsync(host.Database, 101, Base.AddMinutes(minute), clicks, salt);
        }

        await RefreshRollupsAsync(host.Database);
        await CompleteThroughAsync(host.Database, Minute(DateTimeOffset.UtcNow));
        var range = $"from={Iso(Base)}&to={Iso(Base.AddHours(1))}";

        var byMinute = await GetJsonAsync(host, $"/v1/ads/101/clicks?{range}&granularity=1m", Admin);
        Assert.Equal(Expected(60, (0, 7), (4, 2), (5, 5), (14, 1), (15, 6), (59, 10)), Clicks(byMinute));
        Assert.Equal(31, byMinute.GetProperty("total").GetInt64());
        Assert.Equal(Base, Starts(byMinute)[0]);
        Assert.Equal(Base.AddMinutes(59), Starts(byMinute)[59]);

        var by5 = await GetJsonAsync(host, $"/v1/ads/101/clicks?{range}&granularity=5m", Admin);
        Assert.Equal(Expected(12, (0, 9), (1, 5), (2, 1), (3, 6), (11, 10)), Clicks(by5));

        var by15 = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base)}&to={Iso(Base.AddHours(2))}&granularity=15m", Admin);
        Assert.Equal(Expected(8, (0, 15), (1, 6), (3, 10), (4, 20)), Clicks(by15));

        var byHour = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base)}&to={Iso(Base.AddDays(1))}&granularity=1h", Admin);
        Assert.Equal(Expected(24, (0, 31), (1, 20), (5, 8)), Clicks(byHour));

        var byDay = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base)}&to={Iso(Base.AddDays(2))}&granularity=1d", Admin);
        Assert.Equal([59L, 9L], Clicks(byDay));
        Assert.Equal("UTC", byDay.GetProperty("tz").GetString());

        // Tokyo (UTC+9, no daylight saving): local days start at 15:00 UTC, so the range widens to the local midnight before Base.
        var tokyo = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base)}&to={Iso(Base.AddDays(2))}&granularity=1d&tz=Asia/Tokyo", Admin);
        Assert.Equal([Base.AddHours(-9), Base.AddHours(15), Base.AddHours(39)], Starts(tokyo));
        Assert.Equal([59L, 9L, 0L], Clicks(tokyo));
        Assert.Equal(Base.AddHours(63), tokyo.GetProperty("to").GetDateTimeOffset());

        // Kolkata (UTC+5:30): local days start at 18:30 UTC, between two hourly rollup rows, and are still exact.
        var kolkata = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base)}&to={Iso(Base.AddDays(1))}&granularity=1d&tz=Asia/Kolkata", Admin);
        Assert.Equal([Base.AddHours(-5.5), Base.AddHours(18.5)], Starts(kolkata));
        Assert.Equal([59L, 9L], Clicks(kolkata));

        // Unaligned bounds widen to whole buckets.
        var widened = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base.AddMinutes(7))}&to={Iso(Base.AddMinutes(61))}&granularity=15m", Admin);
        Assert.Equal(Base, widened.GetProperty("from").GetDateTimeOffset());
        Assert.Equal(Base.AddMinutes(75), widened.GetProperty("to").GetDateTimeOffset());
        Assert.Equal([15L, 6L, 0L, 10L, 20L], Clicks(widened));
    }

    [Fact]
    public async Task Refreshed_hours_come_from_the_rollups_and_the_real_time_tail_from_the_minutes()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        await host.AddAdvertiserAsync(1, 101);
        var db = host.Database;
        await InsertAsync(db, 101, Base.AddMinutes(10), 5);
        await InsertAsync(db, 101, Base.AddDays(1).AddMinutes(10), 7);
        await InsertAsync(db, 101, Base.AddDays(1).AddHours(1).AddMinutes(10), 11);
        Assert.Equal(3, await RefreshRollupsAsync(db));

        // Rewrite refreshed rollup rows: an answer that shows them was read from the rollups, not recomputed.
        await db.RewriteRollupAsync("ad_clicks_daily", "clicks", 5000, "day = $1", Base);
        await db.RewriteRollupAsync("ad_clicks_hourly", "clicks", 1000, "hour = $1", Base);
        await db.RewriteRollupAsync("ad_clicks_hourly", "clicks", 700, "hour = $1", Base.AddDays(1));

        // A late correction of a refreshed hour, still marked dirty: read from the minutes (11 + 2 + 3, salts summed).
        await InsertAsync(db, 101, Base.AddDays(1).AddHours(1).AddMinutes(20), 2, salt: 1);
        await InsertAsync(db, 101, Base.AddDays(1).AddHours(1).AddMinutes(20), 3, salt: 2);

        // The real-time tail: a minute of the last hour, after completeThrough, never refreshed and not even marked.
        var now = DateTimeOffset.UtcNow;
        var recent = Minute(now).AddMinutes(-1);
        await InsertAsync(db, 101, recent, 4);
        await InsertAsync(db, 101, recent, 6, salt: 5);
        await db.ExecuteAsync("WITH whole AS (DELETE FROM rollup_dirty WHERE hour = $1) DELETE FROM rollup_ad_changes WHERE hour = $1", Hour(recent));
        await CompleteThroughAsync(db, Minute(now).AddMinutes(-30));

        var to = Hour(now).AddHours(1);
        var byHour = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base)}&to={Iso(to)}&granularity=1h", Admin);
        var hours = Clicks(byHour);
        Assert.Equal(1000, hours[0]);
        Assert.Equal(700, hours[24]);
        Assert.Equal(16, hours[25]);
        Assert.Equal(10, hours[(int)((Hour(recent) - Base) / TimeSpan.FromHours(1))]);
        Assert.Equal(1000 + 700 + 16 + 10, byHour.GetProperty("total").GetInt64());

        var byDay = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base)}&to={Iso(Day(now).AddDays(1))}&granularity=1d", Admin);
        var days = Clicks(byDay);
        Assert.Equal(4, days.Length);
        Assert.Equal(5000, days[0]);
        Assert.Equal(700 + 16, days[1]);
        Assert.Equal(10, days[2] + days[3]);
    }

    [Fact]
    public async Task Points_are_final_when_their_bucket_ends_by_complete_through()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        await host.AddAdvertiserAsync(1, 101);
        await InsertAsync(host.Database, 101, Base.AddHours(9).AddMinutes(15), 3);
        await RefreshRollupsAsync(host.Database);
        await InsertAsync(host.Database, 101, Base.AddHours(10).AddMinutes(45), 2, final: false);
        await CompleteThroughAsync(host.Database, Base.AddHours(10).AddMinutes(30));

        var byHour = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base.AddHours(8))}&to={Iso(Base.AddHours(13))}&granularity=1h", Admin);
        Assert.Equal([true, true, false, false, false], Finals(byHour));
        Assert.Equal([0L, 3L, 2L, 0L, 0L], Clicks(byHour));
        Assert.False(byHour.GetProperty("final").GetBoolean());
        Assert.Equal(Base.AddHours(10).AddMinutes(30), byHour.GetProperty("completeThrough").GetDateTimeOffset());

        var byMinute = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base.AddHours(10).AddMinutes(28))}&to={Iso(Base.AddHours(10).AddMinutes(32))}", Admin);
        Assert.Equal([true, true, false, false], Finals(byMinute));

        var closed = await GetJsonAsync(host, $"/v1/ads/101/clicks?from={Iso(Base.AddHours(8))}&to={Iso(Base.AddHours(10))}&granularity=1h", Admin);
        Assert.True(closed.GetProperty("final").GetBoolean());
        Assert.All(Finals(closed), Assert.True);
    }

    [Fact]
    public async Task Advertiser_totals_sum_its_ads_and_the_breakdown_splits_them()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var key = await host.AddAdvertiserAsync(1, 11, 12, 13);
        await host.AddAdvertiserAsync(2, 21);
        await InsertAsync(host.Database, 11, Base.AddMinutes(5), 4);
        await InsertAsync(host.Database, 12, Base.AddMinutes(5), 6, salt: 2);
        await InsertAsync(host.Database, 12, Base.AddMinutes(65), 1);
        await InsertAsync(host.Database, 21, Base.AddMinutes(5), 100);
        await RefreshRollupsAsync(host.Database);
        await CompleteThroughAsync(host.Database, Minute(DateTimeOffset.UtcNow));

        var range = $"from={Iso(Base)}&to={Iso(Base.AddHours(3))}&granularity=1h";
        var totals = await GetJsonAsync(host, $"/v1/advertisers/1/clicks?{range}", key);
        Assert.Equal([10L, 1L, 0L], Clicks(totals));
        Assert.Equal(11, totals.GetProperty("total").GetInt64());
        Assert.False(totals.TryGetProperty("ads", out _));

        var breakdown = await GetJsonAsync(host, $"/v1/advertisers/1/clicks?{range}&breakdown=ad", key);
        var ads = breakdown.GetProperty("ads").EnumerateArray().ToList();
        Assert.Equal([12L, 11L, 13L], ads.Select(a => a.GetProperty("adId").GetInt64()));
        Assert.Equal([7L, 4L, 0L], ads.Select(a => a.GetProperty("total").GetInt64()));
        Assert.Equal([6L, 1L, 0L], Clicks(ads[0]));
        Assert.Equal([10L, 1L, 0L], Clicks(breakdown));

        // The refresh keeps one row per advertiser and hour, and the totals of clean hours are read from it (a
        // rewritten row shows), while the breakdown is read per ad.
        Assert.Equal(10L, await host.Database.ScalarAsync<long>("SELECT clicks FROM advertiser_clicks_hourly WHERE advertiser_id = 1 AND hour = $1", Base));
        Assert.Equal(100L, await host.Database.ScalarAsync<long>("SELECT clicks FROM advertiser_clicks_hourly WHERE advertiser_id = 2 AND hour = $1", Base));
        await host.Database.RewriteRollupAsync("advertiser_clicks_hourly", "clicks", 999, "advertiser_id = 1 AND hour = $1", Base);
        var uncached = $"from={Iso(Base)}&to={Iso(Base.AddHours(2))}&granularity=1h"; // not a range asked (and cached) above
        var fromRollup = await GetJsonAsync(host, $"/v1/advertisers/1/clicks?{uncached}", key);
        Assert.Equal([999L, 1L], Clicks(fromRollup));
        var perAd = await GetJsonAsync(host, $"/v1/advertisers/1/clicks?{uncached}&breakdown=ad", key);
        Assert.Equal([10L, 1L], Clicks(perAd));
        var days = await GetJsonAsync(host, $"/v1/advertisers/1/clicks?from={Iso(Base)}&to={Iso(Base.AddDays(1))}&granularity=1d", key);
        Assert.Equal([1000L], Clicks(days));
    }

    [Fact]
    public async Task An_ad_added_after_its_advertiser_was_asked_about_counts_in_the_next_totals()
    {
        // The query role remembers that an advertiser exists, never which ads it has: totals read them each time.
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var key = await host.AddAdvertiserAsync(1, 11);
        var recent = Minute(DateTimeOffset.UtcNow).AddMinutes(-1);
        var range = $"from={Iso(recent.AddHours(-1))}&to={Iso(recent.AddMinutes(1))}&granularity=1m";
        await InsertAsync(host.Database, 11, recent, 5, final: false);
        Assert.Equal(5, (await GetJsonAsync(host, $"/v1/advertisers/1/clicks?{range}", key)).GetProperty("total").GetInt64());

        await host.Database.ExecuteAsync("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES (12, 1, $1)", ProductHost.AdUrl(12));
        await InsertAsync(host.Database, 12, recent, 3, final: false);

        Assert.Equal(8, (await GetJsonAsync(host, $"/v1/advertisers/1/clicks?{range}", key)).GetProperty("total").GetInt64());
        Assert.Equal(8, (await GetJsonAsync(host, "/v1/top?advertiserId=1", Admin)).GetProperty("ads").EnumerateArray().Sum(a => a.GetProperty("clicks").GetInt64()));
    }

    [Fact]
    public async Task An_advertisers_ads_are_listed_a_page_at_a_time_to_it_and_to_admins_only()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var first = await host.AddAdvertiserAsync(1, Enumerable.Range(100, 25).Select(i => (long)i).ToArray());
        await host.AddAdvertiserAsync(2, 21);
        await host.Database.ExecuteAsync("UPDATE ads SET deleted_at = now() WHERE ad_id = 101");

        var pages = await PagesAsync(host, "/v1/advertisers/1/ads?limit=10", "ads", "adId", first);

        Assert.Equal([10, 10, 5], pages.Select(p => p.Count));
        Assert.Equal(Enumerable.Range(100, 25).Select(i => (long)i), pages.SelectMany(p => p));
        var firstPage = await GetJsonAsync(host, "/v1/advertisers/1/ads?limit=2", first);
        var ads = firstPage.GetProperty("ads").EnumerateArray().ToList();
        Assert.Equal(ProductHost.AdUrl(100), ads[0].GetProperty("redirectUrl").GetString());
        Assert.False(ads[0].GetProperty("deleted").GetBoolean());
        Assert.True(ads[1].GetProperty("deleted").GetBoolean());
        Assert.Equal(25, (await GetJsonAsync(host, "/v1/advertisers/1/ads?limit=1000", Admin)).GetProperty("ads").GetArrayLength());

        await AssertProblemAsync(host, "/v1/advertisers/2/ads", first, HttpStatusCode.NotFound, "unknown-advertiser");
        await AssertProblemAsync(host, "/v1/advertisers/999/ads", Admin, HttpStatusCode.NotFound, "unknown-advertiser");
        await AssertProblemAsync(host, "/v1/advertisers/1/ads?limit=1001", first, HttpStatusCode.BadRequest, "invalid-limit");
        await AssertProblemAsync(host, "/v1/advertisers/1/ads?limit=0", first, HttpStatusCode.BadRequest, "invalid-limit");
        await AssertProblemAsync(host, "/v1/advertisers/1/ads?after=ten", first, HttpStatusCode.BadRequest, "invalid-after");
        await AssertProblemAsync(host, "/v1/advertisers/1/ads", "not-a-key", HttpStatusCode.Unauthorized, "unauthenticated");
    }

    [Fact]
    public async Task Ads_are_searched_by_id_or_url_among_at_most_the_scan_bound_per_page_and_only_among_the_callers_own()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?> { ["Query:SearchScanAds"] = "100" });
        var first = await host.AddAdvertiserAsync(1);
        await host.AddAdvertiserAsync(2, 2000, 2001);
        await host.Database.ExecuteAsync(
            "INSERT INTO ads (ad_id, advertiser_id, redirect_url) SELECT id, 1, 'https://advertiser.example/landing/' || id || '?utm=kc' FROM generate_series(1000, 1249) AS id");
        await host.Database.ExecuteAsync("UPDATE ads SET redirect_url = 'https://shoes.example/Winter-Sale' WHERE ad_id IN (1005, 2000)");
        await host.Database.ExecuteAsync("UPDATE ads SET redirect_url = 'https://shoes.example/winter-sale/boots', deleted_at = now() WHERE ad_id = 1230");

        // A URL substring, whatever its case; each page looks at 100 ads at most, so the one between matches is empty
        // and says where to go on.
        var sale = await PagesAsync(host, "/v1/advertisers/1/ads?q=WINTER-sale&limit=10", "ads", "adId", first);
        Assert.Equal([[1005L], [], [1230L]], sale);
        var last = await GetJsonAsync(host, "/v1/advertisers/1/ads?q=winter-sale&after=1199", first);
        var boots = Assert.Single(last.GetProperty("ads").EnumerateArray());
        Assert.Equal("https://shoes.example/winter-sale/boots", boots.GetProperty("redirectUrl").GetString());
        Assert.True(boots.GetProperty("deleted").GetBoolean());
        Assert.Equal(JsonValueKind.Null, last.GetProperty("next").ValueKind);

        // An id matches exactly (1230's URL no longer holds it); digits also match inside URLs.
        Assert.Equal([1230L], (await PagesAsync(host, "/v1/advertisers/1/ads?q=1230", "ads", "adId", first)).SelectMany(p => p));
        Assert.Equal([1123L, .. Enumerable.Range(1231, 9).Select(i => (long)i)], (await PagesAsync(host, "/v1/advertisers/1/ads?q=123", "ads", "adId", first)).SelectMany(p => p));

        // A page also ends at its limit of matches: every match once, in id order.
        var landing = await PagesAsync(host, "/v1/advertisers/1/ads?q=/landing/&limit=50", "ads", "adId", first);
        Assert.Equal([50, 50, 50, 50, 48], landing.Select(p => p.Count));
        Assert.Equal(Enumerable.Range(1000, 250).Where(i => i is not 1005 and not 1230).Select(i => (long)i), landing.SelectMany(p => p));

        // Another advertiser's ads are never found with this key, by URL or by id, and its list answers 404 as ever.
        Assert.Empty((await PagesAsync(host, "/v1/advertisers/1/ads?q=2000", "ads", "adId", first)).SelectMany(p => p));
        await AssertProblemAsync(host, "/v1/advertisers/2/ads?q=winter-sale", first, HttpStatusCode.NotFound, "unknown-advertiser");
        await AssertProblemAsync(host, "/v1/advertisers/2/ads?q=2000", first, HttpStatusCode.NotFound, "unknown-advertiser");
        Assert.Equal([2000L], (await PagesAsync(host, "/v1/advertisers/2/ads?q=winter-sale", "ads", "adId", Admin)).SelectMany(p => p));
        Assert.Equal([1005L, 1230L], (await PagesAsync(host, "/v1/advertisers/1/ads?q=winter-sale", "ads", "adId", Admin)).SelectMany(p => p));

        // 256 characters are a query; nothing, blanks, 257 characters or a control character are not.
        Assert.Empty((await GetJsonAsync(host, $"/v1/advertisers/1/ads?q={new string('x', 256)}", first)).GetProperty("ads").EnumerateArray());
        foreach (var q in new[] { "", "%20%20", new string('x', 257), "landing%00", "landing%0A1" })
        {
            await AssertProblemAsync(host, $"/v1/advertisers/1/ads?q={q}", first, HttpStatusCode.BadRequest, "invalid-query");
        }

        await AssertProblemAsync(host, "/v1/advertisers/1/ads?q=landing&limit=0", first, HttpStatusCode.BadRequest, "invalid-limit");
        await AssertProblemAsync(host, "/v1/advertisers/1/ads?q=landing&after=x", first, HttpStatusCode.BadRequest, "invalid-after");
    }

    [Fact]
    public async Task An_ad_of_an_advertiser_with_100000_ads_is_found_by_id_and_by_url_ten_thousand_ads_a_page()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var key = await host.AddAdvertiserAsync(1);
        await host.Database.ExecuteAsync(
            "INSERT INTO ads (ad_id, advertiser_id, redirect_url) SELECT id, 1, 'https://advertiser.example/landing/' || id || '?utm=kc' FROM generate_series(1, 100000) AS id");
        await host.Database.ExecuteAsync("UPDATE ads SET redirect_url = 'https://shoes.example/winter-sale' WHERE ad_id = 99999");

        var byId = await PagesAsync(host, "/v1/advertisers/1/ads?q=99999", "ads", "adId", key);
        Assert.Equal(10, byId.Count);
        Assert.Equal([99999L], byId.SelectMany(p => p));
        Assert.Equal(JsonValueKind.Null, (await GetJsonAsync(host, "/v1/advertisers/1/ads?q=99999&after=90000", key)).GetProperty("next").ValueKind);
        Assert.Equal([99999L], (await PagesAsync(host, "/v1/advertisers/1/ads?q=shoes.example", "ads", "adId", key)).SelectMany(p => p));
    }

    [Fact]
    public async Task Advertisers_are_listed_a_page_at_a_time_and_an_advertisers_key_sees_only_itself()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var keys = new List<string>();
        for (var id = 1; id <= 25; id++)
        {
            keys.Add(await host.AddAdvertiserAsync(id, 1000 + id));
        }

        var pages = await PagesAsync(host, "/v1/advertisers?limit=10", "advertisers", "advertiserId", Admin);

        Assert.Equal([10, 10, 5], pages.Select(p => p.Count));
        Assert.Equal(Enumerable.Range(1, 25).Select(i => (long)i), pages.SelectMany(p => p));
        Assert.Equal(25, (await GetJsonAsync(host, "/v1/advertisers?limit=1000", Admin)).GetProperty("advertisers").GetArrayLength());
        var own = await GetJsonAsync(host, "/v1/advertisers", keys[6]);
        Assert.Equal([7L], own.GetProperty("advertisers").EnumerateArray().Select(a => a.GetProperty("advertiserId").GetInt64()));
        Assert.Equal(JsonValueKind.Null, own.GetProperty("next").ValueKind);

        await AssertProblemAsync(host, "/v1/advertisers?limit=1001", Admin, HttpStatusCode.BadRequest, "invalid-limit");
        await AssertProblemAsync(host, "/v1/advertisers?after=ten", Admin, HttpStatusCode.BadRequest, "invalid-after");
    }

    [Fact]
    public async Task A_default_range_older_than_the_minutes_kept_starts_at_the_first_bucket_kept_and_that_start_is_accepted_when_asked_for()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var key = await host.AddAdvertiserAsync(1, 11);

        // 60 day buckets by default; in Asia/Kolkata they are summed from minutes, which are kept 30 days.
        var answer = await GetJsonAsync(host, "/v1/advertisers/1/clicks?granularity=1d&tz=Asia/Kolkata", key);
        var from = answer.GetProperty("from").GetDateTimeOffset();
        Assert.InRange(from, DateTimeOffset.UtcNow.AddDays(-30), DateTimeOffset.UtcNow.AddDays(-29));
        Assert.InRange(answer.GetProperty("points").GetArrayLength(), 30, 31);

        // The start a refusal suggests is accepted as it is.
        using var refused = await host.GetAsync($"/v1/ads/11/clicks?granularity=15m&from={Iso(DateTimeOffset.UtcNow.AddDays(-31))}&to={Iso(DateTimeOffset.UtcNow.AddDays(-28))}", key);
        Assert.Equal(HttpStatusCode.BadRequest, refused.StatusCode);
        var detail = (await refused.Content.ReadFromJsonAsync<JsonElement>()).GetProperty("title").GetString()!;
        var suggested = detail[(detail.IndexOf("at or after ", StringComparison.Ordinal) + 12)..].Split(' ')[0].TrimEnd('.');
        using var accepted = await host.GetAsync($"/v1/ads/11/clicks?granularity=15m&from={Uri.EscapeDataString(suggested)}&to={Iso(DateTimeOffset.UtcNow.AddDays(-28))}", key);
        Assert.Equal(HttpStatusCode.OK, accepted.StatusCode);
    }

    [Fact]
    public async Task Reconciliation_runs_are_listed_newest_first_to_admin_keys_only()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var advertiser = await host.AddAdvertiserAsync(1, 11);
        await host.Database.ExecuteAsync("""
            INSERT INTO reconciliation_runs (range_from, range_to, ad_id, dry_run, raw_clicks, db_clicks, windows_checked, windows_corrected, status, started_at, finished_at)
            VALUES ('2026-11-29T10:00Z', '2026-11-29T11:00Z', null, false, 100, 97, 60, 2, 'succeeded', '2026-11-29T11:15Z', '2026-11-29T11:15:05Z'),
                   ('2026-11-29T11:00Z', '2026-11-29T12:00Z', null, true, 80, 80, 50, 0, 'succeeded', '2026-11-29T12:10Z', '2026-11-29T12:10:04Z'),
                   ('2026-11-29T11:00Z', '2026-11-29T12:00Z', 11, false, 40, 40, 30, 0, 'partial', '2026-11-29T12:15Z', '2026-11-29T12:15:03Z')
            """);

        var runs = (await GetJsonAsync(host, "/v1/reconciliation/runs", Admin)).GetProperty("runs").EnumerateArray().ToList();
        Assert.Equal(2, runs.Count);
        Assert.Equal(11, runs[0].GetProperty("adId").GetInt64());
        Assert.Equal("partial", runs[0].GetProperty("status").GetString());
        Assert.Equal(JsonValueKind.Null, runs[1].GetProperty("adId").ValueKind);
        Assert.Equal((100L, 97L, 2L), (runs[1].GetProperty("rawClicks").GetInt64(), runs[1].GetProperty("dbClicks").GetInt64(), runs[1].GetProperty("windowsCorrected").GetInt64()));
        Assert.Single((await GetJsonAsync(host, "/v1/reconciliation/runs?last=1", Admin)).GetProperty("runs").EnumerateArray());

        await AssertProblemAsync(host, "/v1/reconciliation/runs", advertiser, HttpStatusCode.Forbidden, "admin-only");
        await AssertProblemAsync(host, "/v1/reconciliation/runs?last=0", Admin, HttpStatusCode.BadRequest, "invalid-limit");
        await AssertProblemAsync(host, "/v1/reconciliation/runs", "not-a-key", HttpStatusCode.Unauthorized, "unauthenticated");
    }

    [Fact]
    public async Task An_advertiser_key_sees_only_its_own_advertiser_and_an_admin_key_sees_all()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var first = await host.AddAdvertiserAsync(1, 11, 12);
        var second = await host.AddAdvertiserAsync(2, 21);
        var recent = Minute(DateTimeOffset.UtcNow).AddMinutes(-1);
        await InsertAsync(host.Database, 11, recent, 5);
        await InsertAsync(host.Database, 12, recent, 3);
        await InsertAsync(host.Database, 21, recent, 50);

        foreach (var path in new[] { "/v1/ads/21/clicks", "/v1/advertisers/2/clicks", "/v1/top?advertiserId=2", "/v1/ads/999/clicks", "/v1/advertisers/999/clicks" })
        {
            await AssertProblemAsync(host, path, first, HttpStatusCode.NotFound, path.StartsWith("/v1/ads", StringComparison.Ordinal) ? "unknown-ad" : "unknown-advertiser");
        }

        await AssertProblemAsync(host, "/v1/ads/11/clicks", second, HttpStatusCode.NotFound, "unknown-ad");
        await AssertProblemAsync(host, "/v1/ads/11/clicks", "not-a-key", HttpStatusCode.Unauthorized, "unauthenticated");
        using (var anonymous = await host.Http.GetAsync(new Uri("/v1/top", UriKind.Relative)))
        {
            Assert.Equal(HttpStatusCode.Unauthorized, anonymous.StatusCode);
        }

        var own = await GetJsonAsync(host, "/v1/ads/11/clicks", first);
        Assert.Equal(5, own.GetProperty("total").GetInt64());

        // No sink has reported: completeThrough is unknown and nothing is final.
        Assert.Equal(JsonValueKind.Null, own.GetProperty("completeThrough").ValueKind);
        Assert.All(Finals(own), Assert.False);

        var ownTop = await GetJsonAsync(host, "/v1/top", first);
        Assert.Equal(1, ownTop.GetProperty("advertiserId").GetInt64());
        Assert.Equal([(11L, 5L), (12L, 3L)], TopAds(ownTop));

        var allTop = await GetJsonAsync(host, "/v1/top?window=5m&limit=2", Admin);
        Assert.Equal([(21L, 50L), (11L, 5L)], TopAds(allTop));
        Assert.Equal(JsonValueKind.Null, allTop.GetProperty("advertiserId").ValueKind);
        var scopedTop = await GetJsonAsync(host, "/v1/top?advertiserId=2", Admin);
        Assert.Equal([(21L, 50L)], TopAds(scopedTop));

        Assert.Equal([1L], Advertisers(await GetJsonAsync(host, "/v1/advertisers", first)));
        Assert.Equal([1L, 2L], Advertisers(await GetJsonAsync(host, "/v1/advertisers", Admin)));
        Assert.Equal(50, (await GetJsonAsync(host, "/v1/advertisers/2/clicks", Admin)).GetProperty("total").GetInt64());
    }

    [Fact]
    public async Task Every_invalid_parameter_gets_a_problem_with_its_reason()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?> { ["Query:MaxBreakdownPoints"] = "100" });
        var key = await host.AddAdvertiserAsync(1, 11, 12);
        var from = Iso(Base);
        foreach (var (path, reason) in new[]
        {
            ("/v1/ads/11/clicks?granularity=2m", "invalid-granularity"),
            ("/v1/ads/11/clicks?granularity=", "invalid-granularity"),
            ("/v1/advertisers/1/clicks?granularity=1w", "invalid-granularity"),
            ("/v1/ads/11/clicks?from=yesterday", "invalid-time"),
            ("/v1/ads/11/clicks?to=soon", "invalid-time"),
            ("/v1/ads/11/clicks?from=0001-01-01T00:00:00Z&to=0001-01-01T00:30:00Z", "invalid-time"),
            ("/v1/ads/11/clicks?from=9999-12-31T23:00:00Z&to=9999-12-31T23:59:30Z", "invalid-time"),
            ("/v1/advertisers/1/clicks?granularity=1d&tz=America/New_York&from=0001-01-01&to=0001-01-03", "invalid-time"),
            ("/v1/ads/11/clicks?from=5/1/2026", "invalid-time"),
            ($"/v1/ads/11/clicks?granularity=15m&from={Iso(Minute(DateTimeOffset.UtcNow).AddDays(-40))}&to={Iso(Minute(DateTimeOffset.UtcNow).AddDays(-39))}", "beyond-retention"),
            ($"/v1/advertisers/1/clicks?granularity=1d&tz=Asia/Kolkata&from={Iso(Minute(DateTimeOffset.UtcNow).AddDays(-45))}&to={Iso(Minute(DateTimeOffset.UtcNow).AddDays(-40))}", "beyond-retention"),
            ("/v1/ads/11/clicks?granularity=1d&from=2020-01-01&to=2020-02-01", "beyond-retention"),
            ($"/v1/ads/11/clicks?from={Iso(Base.AddHours(2))}&to={from}", "invalid-range"),
            ($"/v1/ads/11/clicks?from={from}&to={from}", "invalid-range"),
            ($"/v1/ads/11/clicks?from={from}&to={Iso(Base.AddDays(8))}&granularity=1m", "range-too-large"),
            ($"/v1/advertisers/1/clicks?from={from}&to={Iso(Base.AddDays(1))}&granularity=1m&breakdown=ad", "range-too-large"),
            ("/v1/ads/11/clicks?granularity=1d&tz=Mars/Olympus_Mons", "invalid-tz"),
            ("/v1/ads/11/clicks?granularity=1h&tz=Europe/Paris", "invalid-tz"),
            ("/v1/advertisers/1/clicks?breakdown=campaign", "invalid-breakdown"),
            ("/v1/top?window=0m", "invalid-window"),
            ("/v1/top?window=61m", "invalid-window"),
            ("/v1/top?window=2h", "invalid-window"),
            ("/v1/top?window=5s", "invalid-window"),
            ("/v1/top?window=m", "invalid-window"),
            ("/v1/top?limit=0", "invalid-limit"),
            ("/v1/top?limit=101", "invalid-limit"),
            ("/v1/top?limit=ten", "invalid-limit"),
            ("/v1/top?advertiserId=first", "invalid-advertiser"),
        })
        {
            await AssertProblemAsync(host, path, key, HttpStatusCode.BadRequest, reason);
        }

        await AssertProblemAsync(host, "/v1/ads/eleven/clicks", key, HttpStatusCode.NotFound, "unknown-ad");
        await AssertProblemAsync(host, "/v1/advertisers/-1/clicks", key, HttpStatusCode.NotFound, "unknown-advertiser");
        await AssertProblemAsync(host, "/v1/ad/11/clicks", key, HttpStatusCode.NotFound, "not-found");
        await AssertProblemAsync(host, "/v1/top", "not-a-key", HttpStatusCode.Unauthorized, "unauthenticated");

        // Every one of them is counted by its reason (/metrics answers from a scrape cached for a few hundred ms).
        await Task.Delay(TimeSpan.FromSeconds(1));
        foreach (var (reason, count) in new[] { ("invalid-window", 5), ("invalid-time", 6), ("not-found", 1), ("unauthenticated", 1), ("unknown-ad", 1) })
        {
            Assert.Equal(count, await MetricsScraper.ReadAsync(host.Http, "kafkaclicks_http_problems_total", "reason", reason));
        }
    }

    [Fact]
    public async Task The_openapi_document_describes_every_endpoint_with_examples()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        using var document = JsonDocument.Parse(await host.Http.GetStringAsync(new Uri("/openapi/v1.json", UriKind.Relative)));
        var paths = document.RootElement.GetProperty("paths");
        foreach (var path in new[] { "/v1/ads/{adId}/clicks", "/v1/advertisers/{advertiserId}/clicks", "/v1/top", "/v1/advertisers", "/v1/advertisers/{advertiserId}/ads", "/v1/reconciliation/runs" })
        {
            var ok = paths.GetProperty(path).GetProperty("get").GetProperty("responses").GetProperty("200");
            Assert.Equal(JsonValueKind.Object, ok.GetProperty("content").GetProperty("application/json").GetProperty("example").ValueKind);
        }

        Assert.True(document.RootElement.GetProperty("components").GetProperty("securitySchemes").TryGetProperty("ApiKey", out _));
    }

    [Fact]
    public async Task Queries_beyond_the_database_slots_and_their_queue_are_refused_as_overloaded_not_left_hanging()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            ["Query:MaxConcurrentQueries"] = "1",
            ["Query:QueueLimit"] = "1",
            ["Query:QueueTimeout"] = "00:00:00.5",
            ["Query:CacheEnabled"] = "false",
        });
        await host.AddAdvertiserAsync(1, 101);
        await InsertAsync(host.Database, 101, Base.AddMinutes(5), 4);
        var range = $"from={Iso(Base)}&to={Iso(Base.AddHours(1))}";

        // Hold the minutes table: the first query takes the only slot and waits on PostgreSQL.
        await using var connection = await host.Database.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await ClickRows.LockMinutesAsync(connection, transaction);

        var holding = host.GetAsync($"/v1/ads/101/clicks?{range}", Admin);
        await WaitForQueryBlockedOnLockAsync(host.Database);

        // The second waits in the queue and times out; while it waits, a third finds the queue full.
        var waiting = host.GetAsync($"/v1/ads/101/clicks?{range}&granularity=5m", Admin);
        await Task.Delay(100);
        await AssertProblemAsync(host, $"/v1/ads/101/clicks?{range}&granularity=15m", Admin, HttpStatusCode.ServiceUnavailable, "overloaded");
        using (var timedOut = await waiting)
        {
            Assert.Equal(HttpStatusCode.ServiceUnavailable, timedOut.StatusCode);
            Assert.Contains("No database slot freed up within 0.5 s", await timedOut.Content.ReadAsStringAsync(), StringComparison.Ordinal);
        }

        // Released: the held query answers, and the slot serves the next one.
        await transaction.RollbackAsync();
        using (var answered = await holding)
        {
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        }

        Assert.Equal(4, (await GetJsonAsync(host, $"/v1/ads/101/clicks?{range}&granularity=1h", Admin)).GetProperty("total").GetInt64());
    }

    [Fact]
    public async Task One_advertisers_queries_hold_at_most_its_share_of_the_database_slots_and_others_are_still_answered()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            ["Query:MaxConcurrentQueries"] = "2",
            ["Query:MaxConcurrentQueriesPerAdvertiser"] = "1",
            ["Query:QueueTimeout"] = "00:00:02",
            ["Query:CacheEnabled"] = "false",
        });
        await host.AddAdvertiserAsync(1, 101);
        await host.AddAdvertiserAsync(2, 201);
        await InsertAsync(host.Database, 101, Base.AddMinutes(5), 4);
        var range = $"from={Iso(Base)}&to={Iso(Base.AddHours(1))}";

        // Advertiser 1's minute queries wait on the held minutes table (a slow advertiser: 100,000 ads, say): the first
        // takes its one share of the slots, the second waits for that share, not for the last slot.
        await using var connection = await host.Database.DataSource.OpenConnectionAsync();
        await using var transaction = await connection.BeginTransactionAsync();
        await ClickRows.LockMinutesAsync(connection, transaction);
        var first = host.GetAsync($"/v1/ads/101/clicks?{range}&granularity=1m", Admin);
        await WaitForQueryBlockedOnLockAsync(host.Database);
        var second = host.GetAsync($"/v1/ads/101/clicks?{range}&granularity=5m", Admin);
        await Task.Delay(200);

        // Advertiser 2's ads list reads no minutes (on TimescaleDB the hourly rollup would: real-time aggregation): answered
        // at once from the slot advertiser 1 may not take.
        var other = await GetJsonAsync(host, "/v1/advertisers/2/ads", Admin);
        Assert.Equal([201L], other.GetProperty("ads").EnumerateArray().Select(a => a.GetProperty("adId").GetInt64()).ToArray());
        Assert.False(first.IsCompleted);
        Assert.False(second.IsCompleted);

        await transaction.RollbackAsync();
        foreach (var waiting in new[] { first, second })
        {
            using var answered = await waiting;
            Assert.Equal(HttpStatusCode.OK, answered.StatusCode);
        }
    }

    [Fact]
    public async Task A_query_held_past_the_statement_timeout_is_cancelled_and_answered_503_not_500_and_frees_its_slot()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?>
        {
            ["Query:MaxConcurrentQueries"] = "1",
            ["Query:StatementTimeout"] = "00:00:01",
            ["Query:CacheEnabled"] = "false",
        });
        await host.AddAdvertiserAsync(1, 101);
        await InsertAsync(host.Database, 101, Base.AddMinutes(5), 4);
        var range = $"from={Iso(Base)}&to={Iso(Base.AddHours(1))}";

        await using (var connection = await host.Database.DataSource.OpenConnectionAsync())
        await using (var transaction = await connection.BeginTransactionAsync())
        {
            await ClickRows.LockMinutesAsync(connection, transaction);

            // A migration or maintenance job holds the minutes: the query waits on it for the statement timeout, no longer.
            await AssertProblemAsync(host, $"/v1/ads/101/clicks?{range}&granularity=5m", Admin, HttpStatusCode.ServiceUnavailable, "query-timeout");
            await transaction.RollbackAsync();
        }

        // The cancelled query gave its only slot back.
        Assert.Equal(4, (await GetJsonAsync(host, $"/v1/ads/101/clicks?{range}&granularity=5m", Admin)).GetProperty("total").GetInt64());
    }

    /// <summary>The ids on each page of a paged list, following <c>next</c> as <c>after</c> (at most 10 pages).</summary>
    private static async Task<List<List<long>>> PagesAsync(ProductHost host, string firstPage, string list, string id, string key)
    {
        var pages = new List<List<long>>();
        string? after = null;
        do
        {
            var page = await GetJsonAsync(host, firstPage + (after is null ? "" : "&after=" + after), key);
            pages.Add([.. page.GetProperty(list).EnumerateArray().Select(a => a.GetProperty(id).GetInt64())]);
            after = page.GetProperty("next").ValueKind == JsonValueKind.Null ? null : page.GetProperty("next").GetInt64().ToString(CultureInfo.InvariantCulture);
        }
        while (after is not null && pages.Count < 10);
        return pages;
    }

    private static async Task AssertProblemAsync(ProductHost host, string path, string key, HttpStatusCode status, string reason)
    {
        using var response = await host.GetAsync(path, key);
        var body = await response.Content.ReadAsStringAsync();
        Assert.True(response.StatusCode == status, $"{path}: expected {(int)status}, got {(int)response.StatusCode} {body}");
        Assert.Equal("application/problem+json", response.Content.Headers.ContentType?.MediaType);
        using var json = JsonDocument.Parse(body);
        Assert.True(reason == json.RootElement.GetProperty("reason").GetString(), $"{path}: expected {reason}, got {body}");
        Assert.Equal("https://kafkaclicks.dev/problems/" + reason, json.RootElement.GetProperty("type").GetString());
    }

    private static List<long> Advertisers(JsonElement answer) =>
        answer.GetProperty("advertisers").EnumerateArray().Select(a => a.GetProperty("advertiserId").GetInt64()).ToList();
}
