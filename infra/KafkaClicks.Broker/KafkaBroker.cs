using Confluent.Kafka;
using KafkaClicks.Contracts;

namespace KafkaClicks.Broker;

/// <summary>Options for <see cref="KafkaBroker.Start"/>.</summary>
public sealed record KafkaBrokerOptions
{
    /// <summary>Embedded broker only: fixed client port (null = random). See <see cref="EmbeddedKafkaOptions.Port"/>.</summary>
    public int? EmbeddedPort { get; init; }

    /// <summary>Real cluster only: extra admin client properties (security.protocol, sasl.*, ...).</summary>
    public IEnumerable<KeyValuePair<string, string>>? AdminClientConfig { get; init; }

    /// <summary>Real cluster only: timeout for topic creation. Default 30 s.</summary>
    public TimeSpan ProvisionTimeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// The caller needs Kafka transactions with transactional offset commits (exactly-once processing). The embedded
    /// broker runs transactions but drops their offset commits and does not isolate aborted records, so it refuses.
    /// </summary>
    public bool RequiresTransactions { get; init; }

    /// <summary>The topic and group names of the deployment using the broker (<c>Kafka:NamePrefix</c>).</summary>
    public KafkaNames Names { get; init; } = KafkaNames.Default;

    /// <summary>Where librdkafka's log lines of the clients the broker builds go (null: librdkafka's default, stderr).</summary>
    public Action<IClient, LogMessage>? LogHandler { get; init; }
}

/// <summary>
/// The one place that decides between the embedded broker (librdkafka's mock cluster, in process) and a
/// real Kafka cluster. Everything else only sees <see cref="BrokerHandle.BootstrapServers"/>.
/// </summary>
public static class KafkaBroker
{
    /// <summary>
    /// No <paramref name="bootstrapServers"/> (null/empty/whitespace): starts the embedded cluster and creates
    /// every topic on it. Otherwise creates the topics on that cluster (existing ones are accepted if their
    /// partition count matches; one with another count is left as it is and named in
    /// <see cref="BrokerHandle.PartitionCountsDiffer"/>). Blocks until the topics exist.
    /// </summary>
    public static BrokerHandle Start(string? bootstrapServers, IEnumerable<TopicSpec> topics, KafkaBrokerOptions? options = null) =>
        StartAsync(bootstrapServers, topics, options).GetAwaiter().GetResult();

    /// <summary>Async form of <see cref="Start"/>.</summary>
    public static async Task<BrokerHandle> StartAsync(
        string? bootstrapServers,
        IEnumerable<TopicSpec> topics,
        KafkaBrokerOptions? options = null,
        CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topics);
        options ??= new KafkaBrokerOptions();
        var specs = topics.ToList();

        if (string.IsNullOrWhiteSpace(bootstrapServers))
        {
            if (options.RequiresTransactions)
            {
                throw new NotSupportedException(
                    "The embedded broker cannot provide exactly-once processing: it drops transactional offset commits and does not hide aborted records.");
            }

            var cluster = new EmbeddedKafkaCluster(new EmbeddedKafkaOptions { Port = options.EmbeddedPort, LogHandler = options.LogHandler });
            try
            {
                cluster.CreateTopics(specs);
            }
            catch
            {
                cluster.Dispose();
                throw;
            }

            return new BrokerHandle(cluster.BootstrapServers, options.Names, cluster, null);
        }

        var provisioner = new KafkaTopicProvisioner(bootstrapServers, options.AdminClientConfig) { Timeout = options.ProvisionTimeout, LogHandler = options.LogHandler };
        var handle = new BrokerHandle(bootstrapServers, options.Names, null, provisioner);
        try
        {
            await provisioner.EnsureTopicsAsync(specs, cancellationToken).ConfigureAwait(false);
        }
        catch (TopicPartitionCountException e)
        {
            // Not changed, and not fatal: the process starts, so an ingest instance restarted meanwhile answers clicks (from
            // its spool), and the roles that depend on clicks.raw's count refuse to use another themselves.
            handle.PartitionCountsDiffer = e.Message;
        }
        catch (Exception e) when (KafkaTopicProvisioner.IsUnreachable(e))
        {
            // The cluster does not answer: the process starts anyway (ingest spools, the other roles wait for the brokers)
            // and the topics are declared once it answers.
            handle.ProvisionWhenReachable(specs, e);
        }

        return handle;
    }
}

/// <summary>
/// A started broker: the embedded cluster (stopped on dispose) or a real cluster, whose topics may still be waiting to be
/// declared when it did not answer at start (<see cref="Provisioned"/>).
/// </summary>
public sealed class BrokerHandle : IDisposable, IAsyncDisposable
{
    private static readonly TimeSpan ProvisionRetry = TimeSpan.FromSeconds(5);
    private readonly EmbeddedKafkaCluster? _embedded;
    private readonly KafkaTopicProvisioner? _provisioner;
    private readonly CancellationTokenSource _stopping = new();
    private int _disposed;

    internal BrokerHandle(string bootstrapServers, KafkaNames names, EmbeddedKafkaCluster? embedded, KafkaTopicProvisioner? provisioner)
    {
        BootstrapServers = bootstrapServers;
        Names = names;
        _embedded = embedded;
        _provisioner = provisioner;
    }

    /// <summary>bootstrap.servers for every client.</summary>
    public string BootstrapServers { get; }

    /// <summary>The topic and group names of the deployment on this broker.</summary>
    public KafkaNames Names { get; }

    /// <summary>The embedded cluster behind this handle, or null on real Kafka: for fault tests only.</summary>
    public EmbeddedKafkaCluster? Embedded => _embedded;

    /// <summary>For logs only, e.g. "embedded librdkafka mock cluster at 127.0.0.1:40123".</summary>
    public string Description => _embedded is not null
        ? $"embedded librdkafka mock cluster at {BootstrapServers}"
        : $"Kafka cluster at {BootstrapServers}";

    /// <summary>
    /// Completes once every declared topic exists: at once, unless the cluster did not answer at start
    /// (<see cref="UnreachableAtStart"/>); then when a later attempt succeeds, or faulted when one fails otherwise.
    /// </summary>
    public Task Provisioned { get; private set; } = Task.CompletedTask;

    /// <summary>Why the topics could not be declared at start (the cluster did not answer), or null.</summary>
    public string? UnreachableAtStart { get; private set; }

    /// <summary>
    /// Which declared topics exist with another partition count than declared (left as they are), or null. Set at start,
    /// or once <see cref="Provisioned"/> completes when the cluster did not answer at start.
    /// </summary>
    public string? PartitionCountsDiffer { get; internal set; }

    internal void ProvisionWhenReachable(IReadOnlyList<TopicSpec> specs, Exception failure)
    {
        UnreachableAtStart = failure.Message;
        Provisioned = Task.Run(async () =>
        {
            while (true)
            {
                await Task.Delay(ProvisionRetry, _stopping.Token).ConfigureAwait(false);
                try
                {
                    await _provisioner!.EnsureTopicsAsync(specs, _stopping.Token).ConfigureAwait(false);
                    return;
                }
                catch (TopicPartitionCountException e)
                {
                    PartitionCountsDiffer = e.Message;
                    return;
                }
                catch (Exception e) when (KafkaTopicProvisioner.IsUnreachable(e))
                {
                    // Still no answer: try again.
                }
            }
        });
    }

    /// <summary>Declares more topics later (e.g. Streamiz internal topics) on whichever broker this is.</summary>
    public Task EnsureTopicsAsync(IEnumerable<TopicSpec> topics, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topics);
        if (_embedded is not null)
        {
            _embedded.CreateTopics(topics);
            return Task.CompletedTask;
        }

        return _provisioner!.EnsureTopicsAsync(topics, cancellationToken);
    }

    /// <summary>Stops the embedded cluster, or a real cluster's pending declaration of the topics.</summary>
    public void Dispose()
    {
        if (Interlocked.Exchange(ref _disposed, 1) == 1)
        {
            return;
        }

        _stopping.Cancel();
        _stopping.Dispose();
        _embedded?.Dispose();
    }

    /// <inheritdoc cref="Dispose"/>
    public ValueTask DisposeAsync()
    {
        Dispose();
        return ValueTask.CompletedTask;
    }
}
