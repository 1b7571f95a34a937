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

    public string Redis { get; } = $"127.0.0.1:{Environment.GetEnvironmentVariable("REDIS_PORT") ?? "63799"},abortConnect=false";

    public void Say(string line) => Progress.WriteLine($"[{DateTime.Now:HH:mm:ss}] {line}");

    /// <summary>Resident set size of this process in MiB.</summary>
    public static double RssMb()
    {
        foreach (var line in File.ReadLines("/proc/self/status"))
        {
            if (line.StartsWith("VmRSS:", StringComparison.Ordinal))
            {
                return double.Parse(line.Split(' ', StringSplitOptions.RemoveEmptyEntries)[1], System.Globalization.CultureInfo.InvariantCulture) / 1024;
            }
        }

        return 0;
    }
}
