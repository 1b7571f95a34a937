using System.Globalization;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// The broker of a test whose roles run as child processes: on the embedded lanes `kafkaclicks broker` in a process of
/// its own (so killing a role never takes the broker with it); in the cluster lane the cluster, with every topic created
/// by the product's provisioner under the test's own name prefix.
/// </summary>
public sealed class ProcessBroker : IAsyncDisposable
{
    private readonly KafkaClicksProcess? _process;

    private ProcessBroker(string bootstrapServers, TestKafka kafka, IReadOnlyDictionary<string, string> settings, KafkaClicksProcess? process)
    {
        BootstrapServers = bootstrapServers;
        Names = kafka.Names;
        _process = process;
        Environment = new Dictionary<string, string>(settings);
        foreach (var (key, value) in kafka.Environment(bootstrapServers))
        {
            Environment[key] = value;
        }
    }

    public string BootstrapServers { get; }

    /// <summary>The topic and group names the test's processes use.</summary>
    public KafkaNames Names { get; }

    /// <summary>KAFKACLICKS_* variables that point a child process at this broker (the settings it was started with included).</summary>
    public Dictionary<string, string> Environment { get; }

    /// <summary>Starts (or provisions) the broker; <paramref name="settings"/> are KAFKACLICKS_* variables such as partition counts.</summary>
    public static async Task<ProcessBroker> StartAsync(IReadOnlyDictionary<string, string> settings)
    {
        var kafka = TestKafka.ForTest();
        if (!TestKafka.OnCluster)
        {
            var process = KafkaClicksProcess.Start("broker", settings, "broker", "--port", FreePorts.Next().ToString(CultureInfo.InvariantCulture));
            var line = await process.WaitForLineAsync("bootstrap servers:", TimeSpan.FromSeconds(30));
            return new ProcessBroker(line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim(), kafka, settings, process);
        }

        var configuration = kafka.Settings();
        foreach (var (key, value) in settings)
        {
            configuration[key["KAFKACLICKS_".Length..].Replace("__", ":", StringComparison.Ordinal)] = value;
        }

        await using var provisioned = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(configuration), Role.All);
        return new ProcessBroker(provisioned.BootstrapServers, kafka, settings, null);
    }

    /// <summary>
    /// Pauses (SIGSTOP) or resumes (SIGCONT) the broker: the `kafkaclicks broker` process, or the cluster's
    /// (<see cref="TestKafka.ClusterPid"/>). Requests hang meanwhile, as with a frozen broker host.
    /// </summary>
    public void SetReachable(bool reachable) => TestKafka.Signal(_process?.Id ?? TestKafka.ClusterPid(), reachable);

    /// <summary>What the `kafkaclicks broker` process printed (its last lines), for a failure's message; empty on the cluster.</summary>
    public string Output() => _process?.Output() ?? "";

    public async ValueTask DisposeAsync()
    {
        if (_process is not null)
        {
            await _process.DisposeAsync();
        }
    }
}
