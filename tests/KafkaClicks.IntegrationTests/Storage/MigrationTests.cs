using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace KafkaClicks.IntegrationTests.Storage;

public class MigrationTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task Migrate_applies_every_migration_once_and_records_it()
    {
        await using var db = await postgres.CreateDatabaseAsync(migrate: false);
        var migrator = new DatabaseMigrator(db.DataSource, NullLogger<DatabaseMigrator>.Instance);

        var first = await migrator.MigrateAsync();
        var second = await migrator.MigrateAsync();

        var bundled = DatabaseMigrator.Bundled(first.Flavor).Select(m => m.Name).ToList();
        Assert.Equal(bundled, first.Applied);
        Assert.Empty(first.AlreadyApplied);
        Assert.Empty(second.Applied);
        Assert.Equal(bundled, second.AlreadyApplied);
        Assert.Equal(bundled.Count, await db.ScalarAsync<long>("SELECT count(*) FROM schema_migrations"));
        foreach (var table in new[] { "advertisers", "ads", "ad_clicks_minute", "ad_clicks_hourly", "ad_clicks_daily", "reconciliation_runs", "stream_progress" })
        {
            Assert.True(await db.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", table), $"{table} missing");
        }
    }

    [Fact]
    public async Task The_flavor_follows_the_timescaledb_extension_and_shapes_the_minute_table()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var flavor = await db.ScalarAsync<string>("SELECT flavor FROM schema_migrations LIMIT 1");
        Assert.Equal(ExpectedFlavor, flavor);
        if (flavor == "timescale")
        {
            Assert.True(await db.ScalarAsync<bool>(
                "SELECT EXISTS (SELECT 1 FROM timescaledb_information.hypertables WHERE hypertable_name = 'ad_clicks_minute')"));
            return;
        }

        Assert.Equal("r", await db.ScalarAsync<string>("SELECT partstrat::text FROM pg_partitioned_table WHERE partrelid = 'ad_clicks_minute'::regclass"));
        var today = DateTime.UtcNow.Date;
        Assert.True(await db.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", $"ad_clicks_minute_p{today:yyyyMMdd}"));
        Assert.True(await db.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", $"ad_clicks_minute_p{today.AddDays(7):yyyyMMdd}"));
    }

    [Fact]
    public async Task Concurrent_migrations_do_not_collide()
    {
        await using var db = await postgres.CreateDatabaseAsync(migrate: false);
        var results = await Task.WhenAll(Enumerable.Range(0, 4).Select(_ =>
            new DatabaseMigrator(db.DataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync()));

        Assert.Equal(DatabaseMigrator.Bundled(results[0].Flavor).Count, results.Sum(r => r.Applied.Count));
    }

    /// <summary>
    /// A database marked by the per-(hour, ad) marks of 015 (rollup_dirty_ads) keeps every mark through the upgrade to
    /// the log of changes (017): a mark lost there would leave its ad's hour, day and advertiser hour stale for good.
    /// </summary>
    [Fact]
    public async Task Upgrading_to_the_log_of_rollup_changes_keeps_every_per_ad_mark()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        // With marks of two hours.
        await AsBefore017Async(db, "('2026-01-01 10:00+00', 7), ('2026-01-01 10:00+00', 3), ('2026-01-01 11:00+00', 7)");

        var result = await new DatabaseMigrator(db.DataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();

        Assert.Contains("017_rollup_ad_changes", result.Applied);
        Assert.False(await db.ScalarAsync<bool>("SELECT to_regclass('rollup_dirty_ads') IS NOT NULL"));
        Assert.Equal("2026-01-01 10:00:00+00 3,2026-01-01 10:00:00+00 7,2026-01-01 11:00:00+00 7", await db.ScalarAsync<string>("""
            SELECT string_agg(to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00 ' || ad_id, ',' ORDER BY hour, ad_id)
            FROM rollup_ad_changes, unnest(ad_ids) AS ad_id
            """));
        Assert.Equal(2L, await db.ScalarAsync<long>("SELECT count(*) FROM dirty_rollup_hours('-infinity', 'infinity')"));
    }

    /// <summary>
    /// An older sink still running while a newer role upgrades the database (a rolling deploy, a second sink) marks
    /// (hour, ad) pairs in rollup_dirty_ads up to the moment 017 drops it. A mark in a transaction that commits while 017
    /// runs must reach the log: carried over before the drop, it would have been read from a snapshot without it and
    /// dropped with the table, and its ad's hour, day and advertiser hour would stay stale for good.
    /// </summary>
    [Fact]
    [Trait("Category", "Billing")]
    public async Task Upgrading_to_the_log_of_rollup_changes_keeps_a_mark_an_older_writer_commits_meanwhile()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await AsBefore017Async(db, "('2026-01-01 10:00+00', 7)");

        // The older writer's transaction: its minutes and its mark, not committed yet when the upgrade starts.
        await using var writer = await db.DataSource.OpenConnectionAsync();
        await using var transaction = await writer.BeginTransactionAsync();
        await using (var mark = new NpgsqlCommand("INSERT INTO rollup_dirty_ads (hour, ad_id) VALUES ('2026-01-01 11:00+00', 9)", writer, transaction))
        {
            await mark.ExecuteNonQueryAsync();
        }

        var upgrade = new DatabaseMigrator(db.DataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
        await ClickRows.WaitForQueryBlockedOnLockAsync(db);
        await transaction.CommitAsync();
        var result = await upgrade;

        Assert.Contains("017_rollup_ad_changes", result.Applied);
        Assert.Equal("2026-01-01 10:00:00+00 7,2026-01-01 11:00:00+00 9", await db.ScalarAsync<string>("""
            SELECT string_agg(to_char(hour AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS') || '+00 ' || ad_id, ',' ORDER BY hour, ad_id)
            FROM rollup_ad_changes, unnest(ad_ids) AS ad_id
            """));
    }

    /// <summary>The database as 015-016 left it: per-(hour, ad) marks in rollup_dirty_ads (<paramref name="marks"/>, SQL values), 017 and later not applied.</summary>
    private static Task AsBefore017Async(TestDatabase db, string marks) => db.ExecuteAsync($"""
        CREATE TABLE rollup_dirty_ads (
            hour    timestamptz NOT NULL,
            ad_id   bigint      NOT NULL,
            version bigint      NOT NULL DEFAULT nextval('rollup_dirty_version'),
            PRIMARY KEY (hour, ad_id));
        INSERT INTO rollup_dirty_ads (hour, ad_id) VALUES {marks};
        DELETE FROM schema_migrations WHERE name >= '017';
        """);

    [Fact]
    public async Task An_applied_migration_that_was_edited_is_refused_with_a_clear_message()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await db.ExecuteAsync("UPDATE schema_migrations SET checksum = 'edited' WHERE name = '001_core'");

        var error = await Assert.ThrowsAsync<MigrationException>(() =>
            new DatabaseMigrator(db.DataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync());
        Assert.Contains("001_core was changed after it was applied", error.Message, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Partitions_are_created_ahead_and_only_old_ones_are_dropped()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        if (ExpectedFlavor == "timescale")
        {
            // Hypertables make their chunks on insert: the same call exists and creates nothing.
            Assert.Equal(0, await db.ScalarAsync<int>("SELECT ensure_ad_clicks_minute_partitions(now(), now() + interval '1 day')"));
            return;
        }

        var created = await db.ScalarAsync<int>("SELECT ensure_ad_clicks_minute_partitions($1, $2)",
            DateTime.UtcNow.Date.AddDays(-40), DateTime.UtcNow.Date.AddDays(-2));
        Assert.Equal(38, created);
        var before = await db.ScalarAsync<long>("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ad_clicks_minute'::regclass");

        var dropped = await db.ScalarAsync<int>("SELECT drop_ad_clicks_minute_partitions($1)", DateTime.UtcNow.Date.AddDays(-30));
        Assert.Equal(10, dropped);
        Assert.Equal(before - 10, await db.ScalarAsync<long>("SELECT count(*) FROM pg_inherits WHERE inhparent = 'ad_clicks_minute'::regclass"));
        Assert.False(await db.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", $"ad_clicks_minute_p{DateTime.UtcNow.Date.AddDays(-31):yyyyMMdd}"));
        Assert.True(await db.ScalarAsync<bool>("SELECT to_regclass($1) IS NOT NULL", $"ad_clicks_minute_p{DateTime.UtcNow.Date.AddDays(-30):yyyyMMdd}"));
    }

    /// <summary>
    /// A server with TimescaleDB installed but not preloaded (the embedded lane's server on a machine where dev.sh
    /// installed it for the other lanes) lists it in pg_available_extensions, yet CREATE EXTENSION there ends the
    /// session: it must migrate as plain PostgreSQL. The same binaries with the library preloaded migrate as TimescaleDB.
    /// </summary>
    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task The_flavor_follows_what_the_server_loaded_not_what_is_installed(bool preload)
    {
        await using var server = await PrivatePostgres.StartAsync(preload ? TimescalePreload : "");
        await using var dataSource = NpgsqlDataSource.Create(server.UnpooledConnectionString);
        await using (var installed = dataSource.CreateCommand("SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')"))
        {
            Assert.True((bool)(await installed.ExecuteScalarAsync())!, "TimescaleDB must be installed on this machine (infra/dev.sh installs it)");
        }

        var result = await new DatabaseMigrator(dataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();

        Assert.Equal(preload ? StorageFlavor.Timescale : StorageFlavor.Plain, result.Flavor);
        Assert.Equal(DatabaseMigrator.Bundled(result.Flavor).Select(m => m.Name), result.Applied);
        await using var hypertable = dataSource.CreateCommand("SELECT to_regclass('_timescaledb_catalog.hypertable') IS NOT NULL");
        Assert.Equal(preload, (bool)(await hypertable.ExecuteScalarAsync())!);
    }

    private const string TimescalePreload = "-c shared_preload_libraries=timescaledb -c timescaledb.telemetry_level=off";

    /// <summary>The flavor the lane's server must migrate as: TimescaleDB exactly when the lane preloads it.</summary>
    private static string ExpectedFlavor =>
        PrivatePostgres.LaneOptions.Contains("timescaledb", StringComparison.Ordinal) ? "timescale" : "plain";
}
