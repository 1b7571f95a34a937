using KafkaClicks.Migrations;
using KafkaClicks.Sink;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// The real PostgreSQL that infra/dev.sh starts (KAFKACLICKS_TEST_POSTGRES, default the dev.sh port).
/// Each test gets a database of its own, created from scratch and migrated, dropped afterwards.
/// </summary>
public sealed class PostgresServer
{
    public string AdminConnectionString { get; } =
        Environment.GetEnvironmentVariable("KAFKACLICKS_TEST_POSTGRES")
        ?? "Host=127.0.0.1;Port=54329;Username=postgres;Database=postgres;Maximum Pool Size=50";

    public PostgresServer()
    {
        try
        {
            using var connection = new NpgsqlConnection(AdminConnectionString);
            connection.Open();
            ServerVersion = connection.PostgreSqlVersion;
        }
        catch (NpgsqlException e)
        {
            throw new InvalidOperationException($"PostgreSQL is not reachable ({e.Message}); `infra/dev.sh up` starts the test server.", e);
        }
    }

    public Version ServerVersion { get; }

    public async Task<TestDatabase> CreateDatabaseAsync(bool migrate = true)
    {
        var name = "kc_test_" + Guid.NewGuid().ToString("N")[..12];
        await using (var admin = new NpgsqlConnection(AdminConnectionString))
        {
            await admin.OpenAsync();
            await using var create = new NpgsqlCommand($"CREATE DATABASE {name}", admin);
            await create.ExecuteNonQueryAsync();
        }

        var connectionString = new NpgsqlConnectionStringBuilder(AdminConnectionString) { Database = name }.ConnectionString;
        var database = new TestDatabase(name, connectionString, NpgsqlDataSource.Create(connectionString), AdminConnectionString);
        if (migrate)
        {
            await new DatabaseMigrator(database.DataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
        }

        return database;
    }
}

/// <summary>A database of one test; disposing drops it.</summary>
public sealed class TestDatabase(string name, string connectionString, NpgsqlDataSource dataSource, string adminConnectionString) : IAsyncDisposable
{
    public string Name { get; } = name;

    public string ConnectionString { get; } = connectionString;

    public NpgsqlDataSource DataSource { get; } = dataSource;

    public async Task<T> ScalarAsync<T>(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        return (T)(await command.ExecuteScalarAsync())!;
    }

    public async Task ExecuteAsync(string sql, params object[] parameters)
    {
        await using var command = DataSource.CreateCommand(sql);
        foreach (var p in parameters)
        {
            command.Parameters.Add(new NpgsqlParameter { Value = p });
        }

        await command.ExecuteNonQueryAsync();
    }

    /// <summary>The storage flavor the migrations recorded (plain PostgreSQL when unmigrated).</summary>
    public async Task<StorageFlavor> FlavorAsync()
    {
        await using var connection = await DataSource.OpenConnectionAsync();
        return await DatabaseMigrator.RecordedFlavorAsync(connection, default) ?? StorageFlavor.Plain;
    }

    /// <summary>
    /// Recomputes the rollups of the hours overlapping [from, to) and their days the way the product does (its
    /// refresh job and the reconciler), on either flavor: the rollups are continuous aggregates on TimescaleDB.
    /// </summary>
    public async Task RefreshRollupsAsync(DateTime from, DateTime to)
    {
        var flavor = await FlavorAsync();
        await using var connection = await DataSource.OpenConnectionAsync();
        await Rollups.RefreshAsync(connection, flavor, from, to, default);
    }

    /// <summary>
    /// Runs the product's retention once with <paramref name="options"/>: on plain PostgreSQL the sink's retention job
    /// does the work; on TimescaleDB that job sets the policies from the options, and they are then run at once
    /// (run_job) instead of on their schedule.
    /// </summary>
    public async Task RunRetentionAsync(SinkOptions options)
    {
        var job = new RetentionJob(DataSource, Microsoft.Extensions.Options.Options.Create(options), TimeProvider.System, NullLogger<RetentionJob>.Instance);
        if (await job.RunOnceAsync(default) is not null)
        {
            return;
        }

        foreach (var id in await PolicyJobsAsync("policy_retention"))
        {
            await ExecuteAsync($"CALL run_job({id})");
        }
    }

    /// <summary>The ids of TimescaleDB's policy jobs of one kind (proc_name) on this database's tables.</summary>
    public async Task<List<int>> PolicyJobsAsync(string proc)
    {
        var ids = new List<int>();
        await using var command = DataSource.CreateCommand("SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = $1 AND hypertable_name IS NOT NULL ORDER BY job_id");
        command.Parameters.Add(new NpgsqlParameter { Value = proc });
        await using var reader = await command.ExecuteReaderAsync();
        while (await reader.ReadAsync())
        {
            ids.Add(reader.GetInt32(0));
        }

        return ids;
    }

    /// <summary>
    /// On TimescaleDB, takes this database's policies off the background schedule (they first run as soon as the
    /// scheduler notices a new database, then every minute), so that a policy run cannot race a test: one that writes
    /// data older than retention (the test runs the policies itself, <see cref="RunRetentionAsync"/>), or one that
    /// checks the rollups are stale until the product's own refresh runs. Plain PostgreSQL has no background work.
    /// </summary>
    public async Task PauseBackgroundPoliciesAsync()
    {
        if (await FlavorAsync() == StorageFlavor.Timescale)
        {
            await ExecuteAsync("SELECT alter_job(job_id, scheduled => false) FROM timescaledb_information.jobs WHERE hypertable_name IS NOT NULL");
        }
    }

    /// <summary>
    /// Sets <paramref name="column"/> to <paramref name="value"/> in the stored rows of a rollup matching
    /// <paramref name="where"/> (over the rollup's own columns): a test's probe that an answer was read from the
    /// rollup and not recomputed. On TimescaleDB the rollup is a continuous aggregate, and its stored rows are those of
    /// its materialization hypertable (its columns carry the view's names); changing them there logs no invalidation,
    /// so no refresh (the product's or a policy's) undoes the probe.
    /// </summary>
    public async Task RewriteRollupAsync(string rollup, string column, long value, string where, params object[] parameters)
    {
        var table = rollup;
        if (await FlavorAsync() == StorageFlavor.Timescale)
        {
            table = await ScalarAsync<string>("""
                SELECT format('%I.%I', materialization_hypertable_schema, materialization_hypertable_name)
                FROM timescaledb_information.continuous_aggregates WHERE view_name = $1
                """, rollup);
        }

        int changed;
        await using (var command = DataSource.CreateCommand($"UPDATE {table} SET {column} = {value} WHERE {where}"))
        {
            foreach (var p in parameters)
            {
                command.Parameters.Add(new NpgsqlParameter { Value = p });
            }

            changed = await command.ExecuteNonQueryAsync();
        }

        if (changed == 0)
        {
            throw new InvalidOperationException($"no stored row of {rollup} matches {where}: the probe would prove nothing");
        }
    }

    public async ValueTask DisposeAsync()
    {
        await DataSource.DisposeAsync();
        NpgsqlConnection.ClearAllPools();
        await using var admin = new NpgsqlConnection(adminConnectionString);
        await admin.OpenAsync();
        await using var drop = new NpgsqlCommand($"DROP DATABASE IF EXISTS {Name} WITH (FORCE)", admin);
        await drop.ExecuteNonQueryAsync();
    }
}
