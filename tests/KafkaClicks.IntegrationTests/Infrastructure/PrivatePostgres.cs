using System.Diagnostics;
using Npgsql;


namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// A throwaway PostgreSQL cluster of one test, started the way infra/dev.sh starts the shared one (initdb and pg_ctl
/// as user postgres, data under /tmp, a free port), so a test can stop and restart a real database without
/// disturbing the shared server other tests use. Needs root, as the test run has. It runs with the lane's server
/// options (KAFKACLICKS_TEST_PG_OPTIONS, e.g. TimescaleDB preloaded), so it has the flavor of the lane's shared server.
/// </summary>
public sealed class PrivatePostgres : IAsyncDisposable
{
    private const string Bin = "/usr/lib/postgresql/15/bin";
    private readonly string _directory;
    private readonly int _port;
    private readonly string _options;

    private PrivatePostgres(string directory, int port, string options)
    {
        _directory = directory;
        _port = port;
        _options = options;
    }

    /// <summary>The server options of the test lane (empty on plain PostgreSQL).</summary>
    public static string LaneOptions => Environment.GetEnvironmentVariable("KAFKACLICKS_TEST_PG_OPTIONS") ?? "";

    /// <summary>Connects to the cluster's postgres database; short timeouts so an outage is noticed quickly.</summary>
    public string ConnectionString => $"Host=127.0.0.1;Port={_port};Username=postgres;Database=postgres;Timeout=3;Command Timeout=10;Maximum Pool Size=10";

    /// <summary>The same without pooling, for the test's own checks: a pooled connection would be a broken one after a restart.</summary>
    public string UnpooledConnectionString => ConnectionString + ";Pooling=false";

    /// <param name="options">Extra server options; default <see cref="LaneOptions"/>.</param>
    public static async Task<PrivatePostgres> StartAsync(string? options = null)
    {
        var directory = Path.Combine(Path.GetTempPath(), "kc-pg-" + Guid.NewGuid().ToString("N")[..12]);
        Directory.CreateDirectory(Path.Combine(directory, "data"));
        await RunAsync("chown", ["-R", "postgres:postgres", directory]);
        await RunAsync("runuser", ["-u", "postgres", "--", $"{Bin}/initdb", "-D", Path.Combine(directory, "data"), "--auth=trust", "-U", "postgres", "-E", "UTF8"]);
        var server = new PrivatePostgres(directory, FreePorts.Next(), options ?? LaneOptions);
        await server.StartServerAsync();
        return server;
    }

    /// <summary>Starts the (stopped) server again on the same port and waits until it accepts connections.</summary>
    public async Task StartServerAsync()
    {
        await RunAsync("runuser", ["-u", "postgres", "--", $"{Bin}/pg_ctl", "-D", Path.Combine(_directory, "data"), "-l", Path.Combine(_directory, "log"),
            "-w", "-t", "60", "-o", $"-p {_port} -k {_directory} -c listen_addresses=127.0.0.1 {_options}", "start"]);
        await using var connection = new NpgsqlConnection(UnpooledConnectionString);
        await connection.OpenAsync();
    }

    /// <summary>Stops the server the hard way (immediate: no checkpoint, as a crash would), waiting until it is down.</summary>
    public Task StopServerAsync() =>
        RunAsync("runuser", ["-u", "postgres", "--", $"{Bin}/pg_ctl", "-D", Path.Combine(_directory, "data"), "-m", "immediate", "-w", "stop"]);

    public async ValueTask DisposeAsync()
    {
        try
        {
            await StopServerAsync();
        }
        catch (InvalidOperationException)
        {
            // Already stopped.
        }

        Directory.Delete(_directory, recursive: true);
    }

    private static async Task RunAsync(string file, string[] arguments)
    {
        var start = new ProcessStartInfo(file) { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        foreach (var argument in arguments)
        {
            start.ArgumentList.Add(argument);
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        await process.WaitForExitAsync(timeout.Token);
        if (process.ExitCode != 0)
        {
            throw new InvalidOperationException($"{file} {string.Join(' ', arguments)} exited with {process.ExitCode}: {await output} {await error}");
        }
    }
}
