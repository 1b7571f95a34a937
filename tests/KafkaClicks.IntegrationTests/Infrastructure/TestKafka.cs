using System.Diagnostics;
using System.Globalization;
using Confluent.Kafka;
using KafkaClicks.Broker;
using KafkaClicks.Contracts;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// The Kafka of this test lane. By default each product host starts its own embedded broker (librdkafka's mock). In
/// the cluster lane (<c>KAFKACLICKS_TEST_KAFKA=host:port,...</c>, set by <c>infra/dev.sh test cluster</c> or pointed at
/// any Kafka cluster) every test runs against that cluster as production runs: topics created by the product's own
/// provisioner with replication factor <c>KAFKACLICKS_TEST_KAFKA_REPLICATION</c> (default 3), an exactly-once aggregator,
/// and a <c>Kafka:NamePrefix</c> of its own so tests sharing the cluster never read each other's clicks.
/// </summary>
public sealed class TestKafka
{
    private TestKafka(string prefix) => Names = new KafkaNames(prefix);

    /// <summary>The cluster's bootstrap servers, or null in the lanes that use the embedded broker.</summary>
    public static string? Cluster { get; } =
        System.Environment.GetEnvironmentVariable("KAFKACLICKS_TEST_KAFKA") is { Length: > 0 } servers ? servers : null;

    /// <summary>True in the cluster lane.</summary>
    public static bool OnCluster => Cluster is not null;

    /// <summary>Replication factor of the topics the product creates on the cluster.</summary>
    public static short ReplicationFactor { get; } =
        short.TryParse(System.Environment.GetEnvironmentVariable("KAFKACLICKS_TEST_KAFKA_REPLICATION"), CultureInfo.InvariantCulture, out var rf) ? rf : (short)3;

    /// <summary>The topic and group names this test's product uses.</summary>
    public KafkaNames Names { get; }

    /// <summary>A fresh namespace for one test: a new prefix on the cluster, none on the embedded broker (each test starts its own).</summary>
    public static TestKafka ForTest() => new(OnCluster ? "t" + Guid.NewGuid().ToString("N")[..10] + "." : string.Empty);

    /// <summary>Configuration keys that point the product at this lane's Kafka (empty bootstrap: the embedded broker).</summary>
    public Dictionary<string, string?> Settings() => OnCluster
        ? new()
        {
            ["Kafka:BootstrapServers"] = Cluster,
            ["Kafka:NamePrefix"] = Names.Prefix,
            ["Kafka:ReplicationFactor"] = ReplicationFactor.ToString(CultureInfo.InvariantCulture),
            ["Kafka:MinInSyncReplicas"] = Math.Min((short)2, ReplicationFactor).ToString(CultureInfo.InvariantCulture),
            ["Aggregator:Guarantee"] = "ExactlyOnce",
        }
        : new() { ["Kafka:BootstrapServers"] = string.Empty };

    /// <summary>The same settings as KAFKACLICKS_* environment variables for a child process, with the broker it should use.</summary>
    public Dictionary<string, string> Environment(string bootstrapServers)
    {
        var environment = Settings()
            .Where(kv => kv.Key != "Kafka:BootstrapServers")
            .ToDictionary(kv => "KAFKACLICKS_" + kv.Key.Replace(":", "__", StringComparison.Ordinal), kv => kv.Value ?? string.Empty);
        environment["KAFKACLICKS_Kafka__BootstrapServers"] = bootstrapServers;
        return environment;
    }

    /// <summary>
    /// Takes the broker away and brings it back: the embedded one refuses connections; the cluster's process is paused
    /// (SIGSTOP) and resumed (SIGCONT), a stall in which every request hangs, as when a broker host freezes. The cluster
    /// lane names the process in <c>KAFKACLICKS_TEST_KAFKA_PIDFILE</c>.
    /// </summary>
    public static void SetReachable(BrokerHandle broker, bool reachable)
    {
        if (broker.Embedded is { } embedded)
        {
            embedded.SetReachable(reachable);
            return;
        }

        Signal(ClusterPid(), reachable);
    }

    /// <summary>The cluster's broker process (<c>KAFKACLICKS_TEST_KAFKA_PIDFILE</c>).</summary>
    public static int ClusterPid()
    {
        var pidFile = System.Environment.GetEnvironmentVariable("KAFKACLICKS_TEST_KAFKA_PIDFILE");
        if (string.IsNullOrEmpty(pidFile) || !File.Exists(pidFile))
        {
            throw new InvalidOperationException(
                "Pausing the Kafka cluster needs its broker process: set KAFKACLICKS_TEST_KAFKA_PIDFILE to a file holding its pid.");
        }

        return int.Parse(File.ReadAllText(pidFile).Trim(), CultureInfo.InvariantCulture);
    }

    /// <summary>Pauses (SIGSTOP) or resumes (SIGCONT) a process.</summary>
    public static void Signal(int pid, bool reachable)
    {
        using var signal = Process.Start("kill", [reachable ? "-CONT" : "-STOP", pid.ToString(CultureInfo.InvariantCulture)]);
        signal.WaitForExit();
        if (signal.ExitCode != 0)
        {
            throw new InvalidOperationException($"kill {(reachable ? "-CONT" : "-STOP")} {pid} failed ({signal.ExitCode}).");
        }
    }

    /// <summary>
    /// The committed offsets of the consumer's group on <paramref name="partitions"/>, unset where it committed none.
    /// Apache Kafka answers a group that never committed with no offsets; the cluster lane's broker with
    /// GroupIdNotFound, read here as the same.
    /// </summary>
    public static List<TopicPartitionOffset> Committed<TKey, TValue>(IConsumer<TKey, TValue> consumer, IEnumerable<TopicPartition> partitions)
    {
        var asked = partitions.ToList();
        try
        {
            return consumer.Committed(asked, TimeSpan.FromSeconds(10));
        }
        catch (KafkaException e) when (e.Error.Code == ErrorCode.GroupIdNotFound)
        {
            return [.. asked.Select(p => new TopicPartitionOffset(p, Offset.Unset))];
        }
    }
}
