using System.Globalization;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Playwright;

namespace KafkaClicks.BrowserTests;

/// <summary>
/// The dashboard in Debian's headless Chromium, driven by Playwright (which downloads no browser of its own), over
/// demo-like data: 3 advertisers x 10 ads, skewed clicks over the last hour and the last week: the charts and each
/// control of the page (ad search by id and URL, range, granularity and day zone, the top list, CSV downloads)
/// checked against what the database holds.
/// </summary>
public class DashboardTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const string Chromium = "/usr/bin/chromium";

    private static readonly string[] ChromiumFlags =
    [
        "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
        "--disable-component-update", "--disable-sync",
    ];

    [Fact]
    public async Task The_dashboard_draws_what_the_api_answers_finds_ads_by_id_and_url_follows_the_range_and_top_list_picked_and_downloads_what_it_shows()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var key = await SeedAsync(host);

        Environment.SetEnvironmentVariable("PLAYWRIGHT_SKIP_BROWSER_DOWNLOAD", "1");
        using var playwright = await Playwright.CreateAsync();
        var userData = Directory.CreateTempSubdirectory("kafkaclicks-chromium-");
        try
        {
            await using var context = await playwright.Chromium.LaunchPersistentContextAsync(userData.FullName, new BrowserTypeLaunchPersistentContextOptions
            {
                ExecutablePath = Chromium,
                Headless = true,
                Args = ChromiumFlags,
                ViewportSize = new ViewportSize { Width = 1400, Height = 900 },
            });
            var page = context.Pages.Count > 0 ? context.Pages[0] : await context.NewPageAsync();
            var foreign = new List<string>();
            page.Request += (_, request) =>
            {
                if (!request.Url.StartsWith(host.BaseAddress.ToString(), StringComparison.Ordinal))
                {
                    foreign.Add(request.Url);
                }
            };

            await page.GotoAsync(host.BaseAddress.ToString());
            await page.FillAsync("#api-key", key);
            await page.ClickAsync("#key-form button");
            await page.WaitForFunctionAsync("""
                () => Number(document.getElementById('minute-chart').dataset.points) > 0
                   && Number(document.getElementById('range-chart').dataset.points) > 0
                   && document.querySelectorAll('#top tbody tr').length > 0
                """);

            // At first: all of the advertiser's ads, the last hour by minute and the last 7 days by hour.
            var minute = await ChartAsync(page, "minute-chart");
            var week = await ChartAsync(page, "range-chart");
            Assert.InRange(minute.Points, 60, 61);
            Assert.True(minute.Total > 0, "the minute chart shows clicks");
            Assert.True(minute.Partial > 0, "the minutes after completeThrough are drawn as partial");
            Assert.InRange(week.Points, 168, 169);
            Assert.Equal(("all", "1h", "UTC"), (week.Ad, week.Granularity, week.Tz));
            Assert.True(week.Total > minute.Total, "the week holds more clicks than the last hour");
            await AssertStoredAsync(host, minute);
            await AssertStoredAsync(host, week);

            var rows = await page.Locator("#top tbody tr").AllInnerTextsAsync();
            Assert.InRange(rows.Count, 1, 10);
            Assert.StartsWith("1\t1\t1", rows[0], StringComparison.Ordinal);
            Assert.Equal(rows.Count.ToString(CultureInfo.InvariantCulture), await page.Locator("#top-chart").GetAttributeAsync("data-bars"));

            // The ad list is the advertiser's own ads with their URLs, from its ads route; picking one draws that ad alone.
            Assert.Equal(["All ads", .. Enumerable.Range(1, 10).Select(i => AdOption(i))], await page.Locator("#ad option").AllInnerTextsAsync());
            await page.SelectOptionAsync("#ad", "2");
            var two = await ChartedAsync(page, "2");
            Assert.True(two.Minute.Total < minute.Total, "ad 2 alone has fewer clicks than all ads");
            await AssertStoredAsync(host, two.Minute);
            await AssertStoredAsync(host, two.Range);

            // Search by id: the ad with that id (no other ad's URL holds a 4), charted at once.
            await page.FillAsync("#ad-search", "4");
            await page.PressAsync("#ad-search", "Enter");
            var four = await ChartedAsync(page, "4");
            Assert.Equal(["All ads", AdOption(4)], await page.Locator("#ad option").AllInnerTextsAsync());
            Assert.Equal("4", await page.InputValueAsync("#ad"));
            await AssertStoredAsync(host, four.Minute);
            await AssertStoredAsync(host, four.Range);

            // Search by URL, whatever its case: ads 3 and 7 of this advertiser, not advertiser 3's ad 23 with the same URL;
            // the first match is charted.
            await page.FillAsync("#ad-search", "WINTER-SALE");
            await page.PressAsync("#ad-search", "Enter");
            var three = await ChartedAsync(page, "3");
            Assert.Equal(["All ads", AdOption(3), AdOption(7)], await page.Locator("#ad option").AllInnerTextsAsync());
            Assert.Contains("2 ads match", await page.InnerTextAsync("#status"), StringComparison.Ordinal);
            await AssertStoredAsync(host, three.Range);

            // Range and granularity: the last 24 hours by 15 minutes, redrawn from the new answer.
            Assert.True(await page.Locator("#tz").IsDisabledAsync(), "a zone applies to day buckets only");
            await page.SelectOptionAsync("#range", "24h");
            await page.SelectOptionAsync("#granularity", "15m");
            await page.WaitForFunctionAsync("() => document.getElementById('range-chart').dataset.granularity === '15m'");
            var quarters = await ChartAsync(page, "range-chart");
            Assert.InRange(quarters.Points, 96, 97);
            Assert.Equal("3", quarters.Ad);
            Assert.InRange(quarters.To - quarters.From, TimeSpan.FromHours(24), TimeSpan.FromHours(24.5));
            await AssertStoredAsync(host, quarters);

            // Days of the last 30 in Tokyo: buckets start at Tokyo's midnights (15:00 UTC).
            await page.SelectOptionAsync("#granularity", "1d");
            await page.SelectOptionAsync("#range", "30d");
            await page.SelectOptionAsync("#tz", "Asia/Tokyo");
            await page.WaitForFunctionAsync("() => document.getElementById('range-chart').dataset.tz === 'Asia/Tokyo'");
            var days = await ChartAsync(page, "range-chart");
            Assert.Equal("1d", days.Granularity);
            Assert.InRange(days.Points, 30, 31);
            Assert.Equal(TimeSpan.FromHours(15), days.From.UtcDateTime.TimeOfDay);
            await AssertStoredAsync(host, days);
            Assert.Contains("Clicks per day, last 30 days (days in Asia/Tokyo)", await page.InnerTextAsync("#range-caption"), StringComparison.Ordinal);

            // Any range, typed in the browser's time: a day by hour, from 50 hours ago.
            var typed = await page.EvaluateAsync<Dictionary<string, string>>("""
                () => {
                  const hour = 3600 * 1000;
                  const from = new Date(Math.floor(Date.now() / hour) * hour - 50 * hour);
                  const to = new Date(from.getTime() + 24 * hour);
                  const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
                  return { from: local(from), to: local(to), fromUtc: from.toISOString(), toUtc: to.toISOString() };
                }
                """);
            await page.SelectOptionAsync("#granularity", "1h");
            await page.SelectOptionAsync("#range", "custom");
            await page.FillAsync("#from", typed["from"]);
            await page.FillAsync("#to", typed["to"]);
            await page.WaitForFunctionAsync(
                "to => document.getElementById('range-chart').dataset.granularity === '1h' && Date.parse(document.getElementById('range-chart').dataset.to) === Date.parse(to)",
                typed["toUtc"]);
            var custom = await ChartAsync(page, "range-chart");
            Assert.Equal(DateTimeOffset.Parse(typed["fromUtc"], CultureInfo.InvariantCulture), custom.From);
            Assert.Equal(24, custom.Points);
            Assert.True(custom.Total > 0, "the day typed holds clicks");
            await AssertStoredAsync(host, custom);

            // A click on an ad of the top list charts that ad.
            var second = (await page.Locator("#top tbody tr").Nth(1).InnerTextAsync()).Split('\t')[1];
            Assert.NotEqual("3", second);
            await page.Locator("#top tbody tr").Nth(1).ClickAsync();
            var clicked = await ChartedAsync(page, second);
            Assert.Equal(second, await page.InputValueAsync("#ad"));
            Assert.Contains("selected", await page.Locator("#top tbody tr").Nth(1).GetAttributeAsync("class") ?? "", StringComparison.Ordinal);
            await AssertStoredAsync(host, clicked.Minute);
            await AssertStoredAsync(host, clicked.Range);

            // CSV: the chart's buckets, labels and counts as drawn, and the top table's rows as shown.
            var series = Csv(await DownloadAsync(page, "#range-csv"));
            var drawn = await page.EvaluateAsync<JsonElement>("() => { const c = Chart.getChart('range-chart'); return { labels: c.data.labels, clicks: c.data.datasets[0].data }; }");
            Assert.Equal(["t", "label", "clicks", "final"], series[0]);
            var buckets = series.Skip(1).ToList();
            Assert.Equal(clicked.Range.Points, buckets.Count);
            Assert.Equal(drawn.GetProperty("labels").EnumerateArray().Select(l => l.GetString()), buckets.Select(b => b[1]));
            Assert.Equal(drawn.GetProperty("clicks").EnumerateArray().Select(c => c.GetInt64()), buckets.Select(b => long.Parse(b[2], CultureInfo.InvariantCulture)));
            Assert.Equal(clicked.Range.From, DateTimeOffset.Parse(buckets[0][0], CultureInfo.InvariantCulture));
            Assert.Equal(clicked.Range.Total, buckets.Sum(b => long.Parse(b[2], CultureInfo.InvariantCulture)));
            Assert.Equal(clicked.Range.Partial, buckets.Count(b => b[3] == "false"));

            var top = Csv(await DownloadAsync(page, "#top-csv"));
            Assert.Equal(["rank", "ad_id", "advertiser_id", "clicks"], top[0]);
            var table = (await page.Locator("#top tbody tr").AllInnerTextsAsync()).Select(r => r.Split('\t').Select(c => c.Replace(",", "", StringComparison.Ordinal)).ToArray()).ToList();
            Assert.Equal(table.Count, top.Count - 1);
            Assert.Equal(table, top.Skip(1));

            Assert.Equal("localStorage", await page.EvaluateAsync<string>("() => localStorage.getItem('kafkaclicks.apiKey') ? 'localStorage' : 'missing'"));
            Assert.Empty(foreign);

            // An advertiser's key does not see the reconciliation runs, which span every advertiser; an admin key does.
            Assert.True(await page.Locator("#reconciliation").IsHiddenAsync());
            await page.FillAsync("#api-key", ProductHost.AdminKey);
            await page.ClickAsync("#key-form button");
            await page.WaitForFunctionAsync("() => Number(document.getElementById('runs-chart').dataset.runs) === 3");
            Assert.True(await page.Locator("#reconciliation").IsVisibleAsync());
            var runs = await page.Locator("#runs tbody tr").AllInnerTextsAsync();
            Assert.Equal(3, runs.Count);
            Assert.Contains("succeeded", runs[0], StringComparison.Ordinal);

            var lane = Environment.GetEnvironmentVariable("KAFKACLICKS_TEST_LANE") is { Length: > 0 } name ? "-" + name : "";
            var screenshot = Path.Combine(RepositoryRoot(), "artifacts", "browser", $"dashboard{lane}.png");
            Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
            Assert.True(new FileInfo(screenshot).Length > 10_000, "the screenshot has content");
        }
        finally
        {
            userData.Delete(recursive: true);
        }
    }

    private static string AdOption(int adId) =>
        $"Ad {adId} \u00b7 " + (adId is 3 or 7 ? $"https://shoes.example/Winter-Sale/{adId}" : ProductHost.AdUrl(adId));

    /// <summary>What a series chart shows, from the attributes the dashboard sets on its canvas when it draws an answer.</summary>
    private sealed record Drawn(string Ad, string Granularity, string Tz, DateTimeOffset From, DateTimeOffset To, int Points, int Partial, long Total);

    private static async Task<Drawn> ChartAsync(IPage page, string id)
    {
        var data = await page.EvaluateAsync<Dictionary<string, string>>("id => ({ ...document.getElementById(id).dataset })", id);
        return new Drawn(data["ad"], data["granularity"], data["tz"],
            DateTimeOffset.Parse(data["from"], CultureInfo.InvariantCulture), DateTimeOffset.Parse(data["to"], CultureInfo.InvariantCulture),
            int.Parse(data["points"], CultureInfo.InvariantCulture), int.Parse(data["partial"], CultureInfo.InvariantCulture),
            long.Parse(data["total"], CultureInfo.InvariantCulture));
    }

    /// <summary>Waits until both series charts show <paramref name="ad"/> and the ad list has it selected.</summary>
    private static async Task<(Drawn Minute, Drawn Range)> ChartedAsync(IPage page, string ad)
    {
        await page.WaitForFunctionAsync("""
            ad => document.getElementById('minute-chart').dataset.ad === ad && document.getElementById('range-chart').dataset.ad === ad
               && document.getElementById('ad').value === ad
            """, ad);
        return (await ChartAsync(page, "minute-chart"), await ChartAsync(page, "range-chart"));
    }

    /// <summary>The clicks the database holds for advertiser 1's ad (or all its ads) over [from, to).</summary>
    private static Task<long> StoredAsync(ProductHost host, string ad, DateTimeOffset from, DateTimeOffset to) =>
        host.Database.ScalarAsync<long>("""
            SELECT coalesce(sum(m.clicks), 0)::bigint FROM ad_clicks_minute m JOIN ads a USING (ad_id)
            WHERE a.advertiser_id = 1 AND ($1 = 0 OR m.ad_id = $1) AND m.minute >= $2 AND m.minute < $3
            """, ad == "all" ? 0L : long.Parse(ad, CultureInfo.InvariantCulture), from, to);

    /// <summary>The chart's total is what the database holds for its ad and range.</summary>
    private static async Task AssertStoredAsync(ProductHost host, Drawn chart) =>
        Assert.Equal(await StoredAsync(host, chart.Ad, chart.From, chart.To), chart.Total);

    private static async Task<string> DownloadAsync(IPage page, string button)
    {
        var download = await page.RunAndWaitForDownloadAsync(() => page.ClickAsync(button));
        Assert.EndsWith(".csv", download.SuggestedFilename, StringComparison.Ordinal);
        return await File.ReadAllTextAsync((await download.PathAsync())!);
    }

    /// <summary>RFC 4180 rows: fields split on commas, quoted fields unquoted (doubled quotes, commas and line breaks inside).</summary>
    private static List<string[]> Csv(string text)
    {
        var rows = new List<string[]>();
        var row = new List<string>();
        var field = new System.Text.StringBuilder();
        var quoted = false;
        for (var i = 0; i < text.Length; i++)
        {
            var c = text[i];
            if (quoted)
            {
                if (c != '"')
                {
                    field.Append(c);
                }
                else if (i + 1 < text.Length && text[i + 1] == '"')
                {
                    field.Append('"');
                    i++;
                }
                else
                {
                    quoted = false;
                }
            }
            else if (c == '"')
            {
                quoted = true;
            }
            else if (c == ',')
            {
                row.Add(field.ToString());
                field.Clear();
            }
            else if (c == '\n')
            {
                row.Add(field.ToString().TrimEnd('\r'));
                field.Clear();
                rows.Add([.. row]);
                row.Clear();
            }
            else
            {
                field.Append(c);
            }
        }

        Assert.True(field.Length == 0 && row.Count == 0, "the CSV ends with a line break");
        return rows;
    }

    /// <summary>
    /// Demo-like data: ads 1-30 of advertisers 1-3, low ids clicked most, ads 3, 7 and 23 with a URL of their own;
    /// returns advertiser 1's key.
    /// </summary>
    private static async Task<string> SeedAsync(ProductHost host)
    {
        var key = await host.AddAdvertiserAsync(1, Enumerable.Range(1, 10).Select(i => (long)i).ToArray());
        await host.AddAdvertiserAsync(2, Enumerable.Range(11, 10).Select(i => (long)i).ToArray());
        await host.AddAdvertiserAsync(3, Enumerable.Range(21, 10).Select(i => (long)i).ToArray());
        await host.Database.ExecuteAsync("UPDATE ads SET redirect_url = 'https://shoes.example/Winter-Sale/' || ad_id WHERE ad_id IN (3, 7, 23)");
        var now = DateTimeOffset.UtcNow;
        var minute = new DateTimeOffset(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), TimeSpan.Zero);
        await host.Database.ExecuteAsync("SELECT ensure_ad_clicks_minute_partitions($1, $2)", minute.AddDays(-8), minute.AddDays(1));

        // Every minute of the last week for ads 1-30, clicks falling with the ad id and following a daily wave;
        // the last two minutes partial, as the aggregator leaves them.
        await host.Database.ExecuteAsync("""
            INSERT INTO ad_clicks_minute (ad_id, minute, salt, clicks, final, emitted_at)
            SELECT ad, m, 0,
                   greatest(0, round((40.0 / ad) * (1.3 + sin(extract(epoch FROM m) / 86400.0 * 2 * pi())) + (ad * extract(minute FROM m))::bigint % 3))::bigint,
                   m < $1 - interval '2 minutes', now()
            FROM generate_series(1, 30) AS ad, generate_series($1 - interval '7 days', $1, interval '1 minute') AS m
            """, minute);
        await host.Database.ExecuteAsync(
            "INSERT INTO rollup_dirty (hour) SELECT generate_series(date_bin('1 hour', $1 - interval '7 days', timestamptz '2000-01-01'), $1, interval '1 hour') ON CONFLICT DO NOTHING",
            minute);
        await new RollupRefreshJob(host.Database.DataSource, Options.Create(new SinkOptions()), TimeProvider.System, NullLogger<RollupRefreshJob>.Instance)
            .RunOnceAsync(default);
        await ClickRows.CompleteThroughAsync(host.Database, minute.AddMinutes(-1));

        // Three hourly reconciliation runs, as the reconciler role stores them, and a dry run, which is not shown.
        await host.Database.ExecuteAsync("""
            INSERT INTO reconciliation_runs (range_from, range_to, dry_run, raw_clicks, db_clicks, windows_checked, windows_corrected, status, started_at, finished_at)
            SELECT h, h + interval '1 hour', d, 12000 + n, 12000, 1800, n, 'succeeded', h + interval '75 minutes', h + interval '76 minutes'
            FROM (VALUES (3, 2, false), (2, 0, false), (1, 5, false), (0, 9, true)) AS r(back, n, d),
                 LATERAL (SELECT date_bin('1 hour', $1, timestamptz '2000-01-01') - back * interval '1 hour' - interval '2 hours' AS h) AS t
            """, minute);
        return key;
    }

    private static string RepositoryRoot()
    {
        var directory = new DirectoryInfo(AppContext.BaseDirectory);
        while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "KafkaClicks.sln")))
        {
            directory = directory.Parent;
        }

        return directory?.FullName ?? throw new InvalidOperationException("KafkaClicks.sln not found above " + AppContext.BaseDirectory);
    }
}
