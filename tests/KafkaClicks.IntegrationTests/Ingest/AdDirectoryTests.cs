using System.Net;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>
/// Ingest keeps a local, durable copy of the ads table, so that clicks of known ads are redirected and counted while
/// PostgreSQL is down, even by an instance restarted during the outage, and follows the table's changes within seconds.
/// </summary>
[Trait("Category", "Billing")]
public sealed class AdDirectoryTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly TimeSpan Patience = TimeSpan.FromSeconds(30);

    [Fact]
    public async Task Clicks_of_known_ads_are_redirected_and_counted_through_a_database_outage_and_a_restart_during_it()
    {
        await using var database = await PrivatePostgres.StartAsync();
        await using (var dataSource = NpgsqlDataSource.Create(database.UnpooledConnectionString))
        {
            await new DatabaseMigrator(dataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
            await using var seed = dataSource.CreateCommand("""
                INSERT INTO advertisers (advertiser_id, name, api_key_hash) VALUES (1, 'A', '\x00');
                INSERT INTO ads (ad_id, advertiser_id, redirect_url)
                SELECT id, 1, 'https://advertiser.example/landing/' || id || '?utm=kc' FROM generate_series(1, 40) id;
                """);
            await seed.ExecuteNonQueryAsync();
        }

        var directory = Path.Combine(Path.GetTempPath(), "kc-ad-directory-" + Guid.NewGuid().ToString("N")[..12]);
        var key = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32));
        var settings = new Dictionary<string, string?>
        {
            ["ConnectionStrings:Postgres"] = database.ConnectionString,
            ["Ingest:AdDirectory:Path"] = directory,
            ["Ingest:Tokens:Keys:t1"] = key,
            ["Ingest:AdLookupTimeout"] = "00:00:00.300",
        };
        try
        {
            var clicked = new List<string>();
            await using (var host = await ProductHost.StartAsync(postgres, Role.Ingest, settings))
            {
                await EventuallyAsync(() => host.App.Services.GetRequiredService<LocalAdDirectory>().Loaded, "the first copy");
                await database.StopServerAsync();

                // Ads 1-20, none looked up before: each is routed from the copy and produced.
                for (var adId = 1; adId <= 20; adId++)
                {
                    clicked.Add(await ClickAsync(host, adId, HttpStatusCode.Redirect));
                }

                using var ready = await host.Http.GetAsync(new Uri("/readyz", UriKind.Relative));
                Assert.Equal(HttpStatusCode.OK, ready.StatusCode);

                // An ad the copy does not have cannot be routed without the database: 503 after the lookup timeout.
                await ClickAsync(host, 999, HttpStatusCode.ServiceUnavailable);
                Assert.Equal(20, (await host.ReadClicksAsync()).Count);
            }

            // Restarted while the database is still down: the copy on disk routes ads 21-40.
            await using (var restarted = await ProductHost.StartAsync(postgres, Role.Ingest, settings))
            {
                for (var adId = 21; adId <= 40; adId++)
                {
                    clicked.Add(await ClickAsync(restarted, adId, HttpStatusCode.Redirect));
                }

                var events = await restarted.ReadClicksAsync();
                Assert.Equal(20, events.Count);
                Assert.Equal(Enumerable.Range(21, 20).Select(i => (long)i), events.Select(e => e.Message.Value.AdId).Order());
                Assert.All(events, e => Assert.Equal(1L, e.Message.Value.AdvertiserId));
            }
        }
        finally
        {
            Directory.Delete(directory, recursive: true);
        }
    }

    [Fact]
    public async Task The_copy_follows_new_changed_and_deleted_ads_within_seconds()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        await host.AddAdvertiserAsync(1, 1, 2, 3);
        var local = host.App.Services.GetRequiredService<LocalAdDirectory>();
        await EventuallyAsync(() => local.Find(3) is not null, "ads added after the start");

        // A click caches ad 1; a new URL must still be followed once the copy has it.
        Assert.Equal(ProductHost.AdUrl(1), await LocationAsync(host, 1));
        await host.Database.ExecuteAsync("UPDATE ads SET redirect_url = 'https://moved.example/new' WHERE ad_id = 1");
        await host.Database.ExecuteAsync("UPDATE ads SET deleted_at = now() WHERE ad_id = 2");
        await host.Database.ExecuteAsync("DELETE FROM ads WHERE ad_id = 3");
        await EventuallyAsync(() => local.Find(1)?.Location == "https://moved.example/new" && local.Find(2) is null && local.Find(3) is null,
            "the update, the soft delete and the delete");
        Assert.Equal("https://moved.example/new", await LocationAsync(host, 1));
        await ClickAsync(host, 2, HttpStatusCode.NotFound);
        await ClickAsync(host, 3, HttpStatusCode.NotFound);

        // A transaction that began before a sync and commits after it is not skipped.
        await using var late = await host.Database.DataSource.OpenConnectionAsync();
        await using var transaction = await late.BeginTransactionAsync();
        await using (var insert = new NpgsqlCommand("INSERT INTO ads (ad_id, advertiser_id, redirect_url) VALUES (4, 1, 'https://late.example/')", late, transaction))
        {
            await insert.ExecuteNonQueryAsync();
        }

        var sync = host.App.Services.GetRequiredService<AdDirectorySync>();
        var inserted = DateTimeOffset.UtcNow;
        await EventuallyAsync(() => sync.LastSyncedAt > inserted, "a sync while the transaction is open");
        Assert.Null(local.Find(4));
        await transaction.CommitAsync();
        await EventuallyAsync(() => local.Find(4) is not null, "the late transaction's ad");
    }

    private static async Task<string> ClickAsync(ProductHost host, long adId, HttpStatusCode expected)
    {
        var token = host.App.Services.GetRequiredService<ImpressionTokens>().Mint(adId).Token;
        using var click = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
        Assert.Equal(expected, click.StatusCode);
        if (expected == HttpStatusCode.Redirect)
        {
            Assert.Equal(ProductHost.AdUrl(adId), click.Headers.Location?.ToString());
        }

        return token;
    }

    private static async Task<string?> LocationAsync(ProductHost host, long adId)
    {
        var token = host.App.Services.GetRequiredService<ImpressionTokens>().Mint(adId).Token;
        using var click = await host.Http.GetAsync(new Uri($"/c/{token}", UriKind.Relative));
        Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
        return click.Headers.Location?.ToString();
    }

    private static async Task EventuallyAsync(Func<bool> condition, string what)
    {
        var deadline = DateTime.UtcNow + Patience;
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, $"timed out waiting for {what}");
            await Task.Delay(100);
        }
    }
}
