using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using Microsoft.Playwright;

namespace KafkaClicks.BrowserTests;

/// <summary>
/// The dashboard in Debian's headless Chromium, driven by Playwright (which downloads no browser of its own), over
/// demo-like data: 3 advertisers x 10 ads, skewed clicks over the last hour and the last week.
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
    public async Task The_dashboard_draws_both_charts_and_the_top_ads_from_the_api()
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
                   && Number(document.getElementById('hour-chart').dataset.points) > 0
                   && document.querySelectorAll('#top tbody tr').length > 0
                """);

            var minute = await ChartAsync(page, "minute-chart");
            var hour = await ChartAsync(page, "hour-chart");
            Assert.InRange(minute.Points, 60, 61);
            Assert.True(minute.Total > 0, "the minute chart shows clicks");
            Assert.True(minute.Partial > 0, "the minutes after completeThrough are drawn as partial");
            Assert.InRange(hour.Points, 168, 169);
            Assert.True(hour.Total > minute.Total, "the week holds more clicks than the last hour");

            var rows = await page.Locator("#top tbody tr").AllInnerTextsAsync();
            Assert.InRange(rows.Count, 1, 10);
            Assert.StartsWith("1\t1\t1", rows[0], StringComparison.Ordinal);
            Assert.Equal(rows.Count.ToString(System.Globalization.CultureInfo.InvariantCulture), await page.Locator("#top-chart").GetAttributeAsync("data-bars"));

            // The ad list is the advertiser's own ads, from its ads route; picking one draws that ad alone.
            var ads = await page.Locator("#ad option").AllInnerTextsAsync();
            Assert.Equal(["All ads", .. Enumerable.Range(1, 10).Select(i => $"Ad {i}")], ads);
            await page.SelectOptionAsync("#ad", "2");
            await page.WaitForFunctionAsync($"() => Number(document.getElementById('minute-chart').dataset.total) < {minute.Total}");
            await page.FillAsync("#ad-id", "1");
            await page.PressAsync("#ad-id", "Enter");
            await page.WaitForFunctionAsync("() => document.getElementById('ad').value === '1'");
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

            var screenshot = Path.Combine(RepositoryRoot(), "artifacts", "browser", "dashboard.png");
            Directory.CreateDirectory(Path.GetDirectoryName(screenshot)!);
            await page.ScreenshotAsync(new PageScreenshotOptions { Path = screenshot, FullPage = true });
            Assert.True(new FileInfo(screenshot).Length > 10_000, "the screenshot has content");
        }
        finally
        {
            userData.Delete(recursive: true);
        }
    }

    private static async Task<(int Points, int Partial, long Total)> ChartAsync(IPage page, string id)
    {
        var canvas = page.Locator("#" + id);
        return (int.Parse((await canvas.GetAttributeAsync("data-points"))!, System.Globalization.CultureInfo.InvariantCulture),
            int.Parse((await canvas.GetAttributeAsync("data-partial"))!, System.Globalization.CultureInfo.InvariantCulture),
            long.Parse((await canvas.GetAttributeAsync("data-total"))!, System.Globalization.CultureInfo.InvariantCulture));
    }

    /// <summary>Demo-like data: ads 1-30 of advertisers 1-3, low ids clicked most; returns advertiser 1's key.</summary>
    private static async Task<string> SeedAsync(ProductHost host)
    {
        var key = await host.AddAdvertiserAsync(1, Enumerable.Range(1, 10).Select(i => (long)i).ToArray());
        await host.AddAdvertiserAsync(2, Enumerable.Range(11, 10).Select(i => (long)i).ToArray());
        await host.AddAdvertiserAsync(3, Enumerable.Range(21, 10).Select(i => (long)i).ToArray());
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
