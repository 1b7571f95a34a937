using System.Reflection;
using System.Security.Cryptography;
using System.Text;
using Microsoft.Extensions.Logging;
using Npgsql;

namespace KafkaClicks.Migrations;

/// <summary>Outcome of one <see cref="DatabaseMigrator.MigrateAsync"/> call.</summary>
public sealed record MigrationResult(StorageFlavor Flavor, IReadOnlyList<string> Applied, IReadOnlyList<string> AlreadyApplied);

/// <summary>
/// Applies the versioned SQL in infra/sql (embedded in this assembly), once each, recorded in
/// <c>schema_migrations</c>. A file <c>NNN_name.sql</c> runs everywhere; <c>NNN_name.plain.sql</c> and
/// <c>NNN_name.timescale.sql</c> are alternatives chosen by whether the server has the timescaledb library loaded.
/// Safe to run concurrently (advisory lock) and repeatedly.
/// </summary>
public sealed partial class DatabaseMigrator
{
    private const long AdvisoryLockKey = 0x4b61666b61436c6b; // "KafkaClk"
    private const string ResourcePrefix = "KafkaClicks.Sql.";

    private readonly NpgsqlDataSource _dataSource;
    private readonly ILogger<DatabaseMigrator> _logger;

    public DatabaseMigrator(NpgsqlDataSource dataSource, ILogger<DatabaseMigrator> logger)
    {
        _dataSource = dataSource;
        _logger = logger;
    }

    /// <summary>The migrations bundled with this build, in order, for the given flavor.</summary>
    public static IReadOnlyList<Migration> Bundled(StorageFlavor flavor)
    {
        var assembly = typeof(DatabaseMigrator).Assembly;
        var suffix = flavor == StorageFlavor.Timescale ? ".timescale.sql" : ".plain.sql";
        var other = flavor == StorageFlavor.Timescale ? ".plain.sql" : ".timescale.sql";
        return assembly.GetManifestResourceNames()
            .Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal) && n.EndsWith(".sql", StringComparison.Ordinal))
            .Where(n => !n.EndsWith(other, StringComparison.Ordinal))
            .Select(n => n[ResourcePrefix.Length..])
            .Select(file =>
            {
                var name = file.EndsWith(suffix, StringComparison.Ordinal) ? file[..^suffix.Length] : file[..^".sql".Length];
                return new Migration(name, file, ReadResource(assembly, ResourcePrefix + file));
            })
            .OrderBy(m => m.Name, StringComparer.Ordinal)
            .ToList();
    }

    /// <summary>Detects the flavor (TimescaleDB when the server preloads it), then applies what is missing.</summary>
    public async Task<MigrationResult> MigrateAsync(CancellationToken cancellationToken = default)
    {
        await using var connection = await _dataSource.OpenConnectionAsync(cancellationToken);
        await ExecuteAsync(connection, $"SELECT pg_advisory_lock({AdvisoryLockKey})", cancellationToken);
        try
        {
            await ExecuteAsync(connection, """
                CREATE TABLE IF NOT EXISTS schema_migrations (
                    name       text PRIMARY KEY,
                    file       text        NOT NULL,
                    flavor     text        NOT NULL,
                    checksum   text        NOT NULL,
                    applied_at timestamptz NOT NULL DEFAULT now()
                )
                """, cancellationToken);

            var flavor = await RecordedFlavorAsync(connection, cancellationToken) ?? await DetectFlavorAsync(connection, cancellationToken);
            var applied = new List<string>();
            var skipped = new List<string>();
            var done = await AppliedAsync(connection, cancellationToken);
            foreach (var migration in Bundled(flavor))
            {
                if (done.TryGetValue(migration.Name, out var checksum))
                {
                    if (checksum != migration.Checksum)
                    {
                        throw new MigrationException(
                            $"Migration {migration.Name} was changed after it was applied (checksum {checksum} in the database, " +
                            $"{migration.Checksum} in this build). Add a new migration instead of editing an applied one.");
                    }

                    skipped.Add(migration.Name);
                    continue;
                }

                await ApplyAsync(connection, migration, flavor, cancellationToken);
                LogApplied(migration.File, flavor);
                applied.Add(migration.Name);
            }

            return new MigrationResult(flavor, applied, skipped);
        }
        finally
        {
            // A broken connection (server restarted, backend terminated) has lost its session lock already; unlocking it
            // would only throw over the error that says what went wrong.
            if (connection.State == System.Data.ConnectionState.Open)
            {
                await ExecuteAsync(connection, $"SELECT pg_advisory_unlock({AdvisoryLockKey})", CancellationToken.None);
            }
        }
    }

    /// <summary>The flavor recorded by earlier migrations, or null on an empty database.</summary>
    public static async Task<StorageFlavor?> RecordedFlavorAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(
            "SELECT flavor FROM schema_migrations WHERE to_regclass('schema_migrations') IS NOT NULL ORDER BY name LIMIT 1", connection);
        try
        {
            var value = await command.ExecuteScalarAsync(cancellationToken) as string;
            return value is null ? null : Enum.Parse<StorageFlavor>(value, ignoreCase: true);
        }
        catch (PostgresException e) when (e.SqlState == PostgresErrorCodes.UndefinedTable)
        {
            return null;
        }
    }

    /// <summary>
    /// TimescaleDB only when the server has its library preloaded: installing the extension's files makes it appear in
    /// pg_available_extensions of every server on the machine, but CREATE EXTENSION on a server that did not preload it
    /// ends the session (FATAL "extension must be preloaded"), which no savepoint can catch.
    /// </summary>
    public static async Task<StorageFlavor> DetectFlavorAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand("""
            SELECT EXISTS (SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb')
               AND EXISTS (SELECT 1 FROM regexp_split_to_table(current_setting('shared_preload_libraries'), '\s*,\s*') AS l(library)
                           WHERE regexp_replace(trim(both ' "' from l.library), '^.*/', '') = 'timescaledb')
            """, connection);
        var loaded = (bool)(await command.ExecuteScalarAsync(cancellationToken))!;
        return loaded ? StorageFlavor.Timescale : StorageFlavor.Plain;
    }

    private static async Task<Dictionary<string, string>> AppliedAsync(NpgsqlConnection connection, CancellationToken cancellationToken)
    {
        var result = new Dictionary<string, string>(StringComparer.Ordinal);
        await using var command = new NpgsqlCommand("SELECT name, checksum FROM schema_migrations", connection);
        await using var reader = await command.ExecuteReaderAsync(cancellationToken);
        while (await reader.ReadAsync(cancellationToken))
        {
            result[reader.GetString(0)] = reader.GetString(1);
        }

        return result;
    }

    private static async Task ApplyAsync(NpgsqlConnection connection, Migration migration, StorageFlavor flavor, CancellationToken cancellationToken)
    {
        await using var transaction = await connection.BeginTransactionAsync(cancellationToken);
        try
        {
            await using (var command = new NpgsqlCommand(migration.Sql, connection, transaction))
            {
                await command.ExecuteNonQueryAsync(cancellationToken);
            }

            await using (var record = new NpgsqlCommand(
                "INSERT INTO schema_migrations (name, file, flavor, checksum) VALUES ($1, $2, $3, $4)", connection, transaction))
            {
                record.Parameters.Add(new NpgsqlParameter { Value = migration.Name });
                record.Parameters.Add(new NpgsqlParameter { Value = migration.File });
                record.Parameters.Add(new NpgsqlParameter { Value = flavor.ToString().ToLowerInvariant() });
                record.Parameters.Add(new NpgsqlParameter { Value = migration.Checksum });
                await record.ExecuteNonQueryAsync(cancellationToken);
            }

            await transaction.CommitAsync(cancellationToken);
        }
        catch (PostgresException e)
        {
            throw new MigrationException($"Migration {migration.File} failed: {e.MessageText} (SQLSTATE {e.SqlState}).", e);
        }
    }

    private static async Task ExecuteAsync(NpgsqlConnection connection, string sql, CancellationToken cancellationToken)
    {
        await using var command = new NpgsqlCommand(sql, connection);
        await command.ExecuteNonQueryAsync(cancellationToken);
    }

    private static string ReadResource(Assembly assembly, string name)
    {
        using var stream = assembly.GetManifestResourceStream(name)!;
        using var reader = new StreamReader(stream, Encoding.UTF8);
        return reader.ReadToEnd();
    }

    [LoggerMessage(EventId = 1001, Level = LogLevel.Information, Message = "Applied migration {File} ({Flavor})")]
    private partial void LogApplied(string file, StorageFlavor flavor);
}

/// <summary>One versioned SQL file.</summary>
public sealed record Migration(string Name, string File, string Sql)
{
    /// <summary>SHA-256 of the SQL text, so an edited applied migration is detected.</summary>
    public string Checksum { get; } = Convert.ToHexStringLower(SHA256.HashData(Encoding.UTF8.GetBytes(Sql.ReplaceLineEndings("\n"))));
}

/// <summary>A migration could not be applied; the message says which and why.</summary>
public sealed class MigrationException : Exception
{
    public MigrationException(string message) : base(message) { }

    public MigrationException(string message, Exception inner) : base(message, inner) { }

    public MigrationException() { }
}
