using KafkaClicks.Migrations;
using Microsoft.Extensions.Logging.Abstractions;
using Npgsql;
using NpgsqlTypes;
using StackExchange.Redis;

namespace KafkaClicks.Benchmarks;

/// <summary>One macro benchmark: measures the product and a baseline in the same run.</summary>
public interface IBenchmark
{
    Task<IReadOnlyDictionary<string, object>> RunAsync(BenchmarkContext context);
}

/// <summary>Where progress goes (stderr under --json so stdout stays machine-readable) and how to reach the servers.</summary>
public sealed class BenchmarkContext(TextWriter progress)
{
    public TextWriter Progress { get; } = progress;

    public string PostgresAdmin { get; } =
        $"Host=127.0.0.1;Port={Environment.GetEnvironmentVariable("PG_PORT") ?? "54329"};Username=postgres;Database=postgres;Maximum Pool Size=64";

    /// <summary>
    /// The local Redis, database 1: the benchmarks' own, so the impression claims they leave (millions per run, each kept
    /// for the impression lifetime) never slow the tests, which use database 0 (a test that scans keys timed out behind
    /// 5.8 million of them). Emptied when a benchmark starts (<see cref="ClearRedisAsync"/>).
    /// </summary>
    public string Redis { get; } = $"127.0.0.1:{Environment.GetEnvironmentVariable("REDIS_PORT") ?? "63799"},abortConnect=false,defaultDatabase={RedisDatabase}";

    private const int RedisDatabase = 1;

    /// <summary>Empties the benchmarks' Redis database (<see cref="Redis"/>), and only that one.</summary>
    public async Task ClearRedisAsync()
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(Redis + ",allowAdmin=true");
        foreach (var server in multiplexer.GetServers())
        {
            await server.FlushDatabaseAsync(RedisDatabase);
        }
    }

    public void Say(string line) => Progress.WriteLine($"[{DateTime.Now:HH:mm:ss}] {line}");

    /// <summary>
    /// The settings every benchmark that hosts product roles starts from: <paramref name="database"/>, the local Redis,
    /// the embedded broker, a fresh token key and a public base URL, warnings only.
    /// </summary>
    public Dictionary<string, string?> ProductSettings(string database) => new()
    {
        ["Urls"] = "http://127.0.0.1:0",
        ["ConnectionStrings:Postgres"] = database,
        ["ConnectionStrings:Redis"] = Redis,
        ["Kafka:BootstrapServers"] = "",
        ["Ingest:Tokens:ActiveKeyId"] = "bench",
        ["Ingest:PublicBaseUrl"] = "https://click.bench.test",
        ["Ingest:Tokens:Keys:bench"] = Convert.ToBase64String(System.Security.Cryptography.RandomNumberGenerator.GetBytes(32)),
        ["Logging:LogLevel:Default"] = "Warning",
    };

    /// <summary>A fresh, migrated database of that name on the local server (dropped first if it exists); returns its connection string.</summary>
    public async Task<string> CreateDatabaseAsync(string name)
    {
        await AdminAsync($"DROP DATABASE IF EXISTS {name} WITH (FORCE)");
        await AdminAsync($"CREATE DATABASE {name}");
        var connectionString = new NpgsqlConnectionStringBuilder(PostgresAdmin) { Database = name }.ConnectionString;
        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        await new DatabaseMigrator(dataSource, NullLogger<DatabaseMigrator>.Instance).MigrateAsync();
        return connectionString;
    }

    /// <summary>Drops a database made by <see cref="CreateDatabaseAsync"/>.</summary>
    public async Task DropDatabaseAsync(string connectionString)
    {
        NpgsqlConnection.ClearAllPools();
        await AdminAsync($"DROP DATABASE IF EXISTS {new NpgsqlConnectionStringBuilder(connectionString).Database} WITH (FORCE)");
    }

    /// <summary>Advertiser 1 with ads 1..<paramref name="ads"/>, each redirecting to its own landing page.</summary>
    public static async Task SeedAdsAsync(string connectionString, int ads)
    {
        // No command timeout: 10,000,000 ads take minutes to copy in (each row stamped by the change trigger).
        await using var dataSource = NpgsqlDataSource.Create(new NpgsqlConnectionStringBuilder(connectionString) { CommandTimeout = 0 }.ConnectionString);
        await using (var advertiser = dataSource.CreateCommand("INSERT INTO advertisers (advertiser_id, name) VALUES (1, 'bench')"))
        {
            await advertiser.ExecuteNonQueryAsync();
        }

        await using var connection = await dataSource.OpenConnectionAsync();
        await using var copy = await connection.BeginBinaryImportAsync("COPY ads (ad_id, advertiser_id, redirect_url) FROM STDIN (FORMAT BINARY)");
        for (long adId = 1; adId <= ads; adId++)
        {
            await copy.StartRowAsync();
            await copy.WriteAsync(adId, NpgsqlDbType.Bigint);
            await copy.WriteAsync(1L, NpgsqlDbType.Bigint);
            await copy.WriteAsync($"https://advertiser.example/landing/{adId}", NpgsqlDbType.Text);
        }

        await copy.CompleteAsync();
    }

    private async Task AdminAsync(string sql)
    {
        await using var admin = new NpgsqlConnection(PostgresAdmin);
        await admin.OpenAsync();
        await using var command = new NpgsqlCommand(sql, admin);
        await command.ExecuteNonQueryAsync();
    }

    /// <summary>Resident set size of this process, or of process <paramref name="pid"/>, in MiB.</summary>
    public static double RssMb(int? pid = null)
    {
        foreach (var line in File.ReadLines(pid is null ? "/proc/self/status" : $"/proc/{pid}/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
            }
        }

        return 0;
    }

    /// <summary>
    /// CPU seconds (user + system) this process's threads have used so far, in total and for the threads whose name
    /// starts with <paramref name="threadNamePrefix"/> (Linux keeps the first 15 characters of a thread's name).
    /// Threads that ended are missing from the per-thread sum, so take both readings while those threads run.
    /// </summary>
    public static (double Process, double Threads) CpuSeconds(string threadNamePrefix)
    {
        var process = System.Diagnostics.Process.GetCurrentProcess().TotalProcessorTime.TotalSeconds;
        var prefix = threadNamePrefix[..Math.Min(threadNamePrefix.Length, 15)];
        long ticks = 0;
        foreach (var task in Directory.EnumerateDirectories("/proc/self/task"))
        {
            try
            {
                if (!File.ReadAllText(Path.Combine(task, "comm")).StartsWith(prefix, StringComparison.OrdinalIgnoreCase))
                {
                    continue;
                }
            }
            catch (IOException)
            {
                continue; // the thread ended between listing and reading
            }

            ticks += ProcessCpu.Read(Path.Combine(task, "stat"))?.Own ?? 0;
        }

        return (process, ticks / ProcessCpu.TicksPerSecond);
    }
}
