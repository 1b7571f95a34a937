using KafkaClicks.Migrations;
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
