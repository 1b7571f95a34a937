using System.Globalization;
using System.Runtime.InteropServices;
using Confluent.Kafka;
using KafkaClicks.Contracts;

namespace KafkaClicks.Broker;

/// <summary>Options for <see cref="EmbeddedKafkaCluster"/>.</summary>
public sealed record EmbeddedKafkaOptions
{
    /// <summary>Number of mock brokers (ids 1..n). Default 1.</summary>
    public int BrokerCount { get; init; } = 1;

    /// <summary>
    /// Fixed TCP port for clients (127.0.0.1:Port), or null for the mock's random port. The mock always
    /// listens on a random port (its listener binds 127.0.0.1:0 and no conf property or API changes that);
    /// a fixed port is served by an in-process TCP forwarder, and the broker advertises
    /// 127.0.0.1:Port in Metadata (rd_kafka_mock_broker_set_host_port), so every connection goes through it.
    /// Only supported with <see cref="BrokerCount"/> = 1.
    /// </summary>
    public int? Port { get; init; }

    /// <summary>Where the metadata client's librdkafka log lines go (null: librdkafka's default, stderr).</summary>
    public Action<IClient, LogMessage>? LogHandler { get; init; }
}

/// <summary>
/// librdkafka's in-process mock Kafka cluster (see ENVIRONMENT.md "Embedded Kafka" for its limits:
/// no CreateTopics/DeleteTopics/DescribeConfigs admin calls, no compaction, no topic configs,
/// retention capped at 5 MiB or 100k batches per partition). Thread-safe.
/// </summary>
public sealed class EmbeddedKafkaCluster : IDisposable
{
    private readonly Lock _gate = new();
    private readonly TcpForwarder? _forwarder;
    private readonly Action<IClient, LogMessage>? _logHandler;
    private IntPtr _rk;
    private IntPtr _mcluster;
    private IAdminClient? _metadataClient;
    private bool _disposed;

    /// <summary>Starts a mock cluster.</summary>
    public EmbeddedKafkaCluster(EmbeddedKafkaOptions? options = null)
    {
        options ??= new EmbeddedKafkaOptions();
        if (options.BrokerCount < 1)
        {
            throw new ArgumentOutOfRangeException(nameof(options), "BrokerCount must be at least 1.");
        }

        if (options.Port is { } p && (p is < 1 or > 65535 || options.BrokerCount != 1))
        {
            throw new ArgumentOutOfRangeException(nameof(options), "Port must be 1..65535 and needs BrokerCount = 1.");
        }

        BrokerCount = options.BrokerCount;
        _logHandler = options.LogHandler;
        LibrdkafkaMockNative.EnsureInitialized();

        // Bind the fixed port before starting anything so a port in use fails fast and cleanly.
        if (options.Port is { } port)
        {
            _forwarder = new TcpForwarder(port);
        }

        try
        {
            var errstr = new byte[512];
            var conf = LibrdkafkaMockNative.rd_kafka_conf_new();
            // log_level 4 (warning): hides the bookkeeping handle's "No bootstrap.servers configured" notice;
            // the mock's own errors (LOG_CRIT, e.g. a failed bind) still reach stderr.
            foreach (var (name, value) in new[] { ("client.id", "kafkaclicks-embedded-broker"), ("log_level", "4") })
            {
                if (LibrdkafkaMockNative.rd_kafka_conf_set(conf, name, value, errstr, (UIntPtr)errstr.Length) != LibrdkafkaMockNative.RdKafkaConfOk)
                {
                    LibrdkafkaMockNative.rd_kafka_conf_destroy(conf);
                    throw new InvalidOperationException($"rd_kafka_conf_set({name}) failed: " + LibrdkafkaMockNative.ErrBuf(errstr));
                }
            }

            // This producer handle is only bookkeeping for the mock cluster; it never produces. Its threads and the mock
            // cluster's are started with every signal blocked (see SignalMask).
            using (SignalMask.BlockAll())
            {
                _rk = LibrdkafkaMockNative.rd_kafka_new(LibrdkafkaMockNative.RdKafkaProducer, conf, errstr, (UIntPtr)errstr.Length);
                if (_rk == IntPtr.Zero)
                {
                    LibrdkafkaMockNative.rd_kafka_conf_destroy(conf); // not owned by librdkafka on failure
                    throw new InvalidOperationException("rd_kafka_new failed: " + LibrdkafkaMockNative.ErrBuf(errstr));
                }

                _mcluster = LibrdkafkaMockNative.rd_kafka_mock_cluster_new(_rk, BrokerCount);
            }

            if (_mcluster == IntPtr.Zero)
            {
                throw new InvalidOperationException("rd_kafka_mock_cluster_new failed (see librdkafka's log on stderr).");
            }

            // Admin calls the mock does not implement then fail fast instead of hanging.
            LibrdkafkaMockNative.rd_kafka_mock_set_controller_id(_mcluster, 1);
            // Consumer groups form at once instead of after group.initial.rebalance.delay.ms.
            LibrdkafkaMockNative.rd_kafka_mock_group_initial_rebalance_delay_ms(_mcluster, 0);

            MockBootstrapServers = Marshal.PtrToStringUTF8(LibrdkafkaMockNative.rd_kafka_mock_cluster_bootstraps(_mcluster))
                ?? throw new InvalidOperationException("rd_kafka_mock_cluster_bootstraps returned null.");

            if (_forwarder is not null)
            {
                var target = MockBootstrapServers.Split(',')[0];
                var targetPort = int.Parse(target[(target.LastIndexOf(':') + 1)..], CultureInfo.InvariantCulture);
                _forwarder.Start(targetPort);
                LibrdkafkaMockNative.rd_kafka_mock_broker_set_host_port(_mcluster, 1, "127.0.0.1", _forwarder.Port);
                BootstrapServers = "127.0.0.1:" + _forwarder.Port.ToString(CultureInfo.InvariantCulture);
            }
            else
            {
                BootstrapServers = MockBootstrapServers;
            }
        }
        catch
        {
            DestroyNative();
            throw;
        }
    }

    /// <summary>bootstrap.servers for clients, e.g. "127.0.0.1:40123".</summary>
    public string BootstrapServers { get; }

    /// <summary>The mock's own listener address(es); equals <see cref="BootstrapServers"/> unless a fixed port is forwarded.</summary>
    public string MockBootstrapServers { get; } = "";

    /// <summary>Number of mock brokers.</summary>
    public int BrokerCount { get; }

    /// <summary>
    /// Creates a topic with rd_kafka_mock_topic_create. The mock has no topic configs, so
    /// <see cref="TopicSpec.Configs"/> (cleanup.policy, retention.ms, ...) are ignored, and the replication
    /// factor is capped at <see cref="BrokerCount"/>. An existing topic with the declared partition count is
    /// accepted; one with another count (e.g. auto-created by a producer with the mock's default of 4)
    /// throws <see cref="InvalidOperationException"/>.
    /// </summary>
    public void CreateTopic(TopicSpec spec)
    {
        ArgumentNullException.ThrowIfNull(spec);
        spec.Validate();
        var rf = spec.ReplicationFactor <= 0 ? 1 : Math.Min((int)spec.ReplicationFactor, BrokerCount);

        int err;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            err = LibrdkafkaMockNative.rd_kafka_mock_topic_create(_mcluster, spec.Name, spec.Partitions, rf);
        }

        if (err == LibrdkafkaMockNative.RespErrTopicAlreadyExists)
        {
            var existing = PartitionCount(spec.Name, TimeSpan.FromSeconds(10));
            if (existing != spec.Partitions)
            {
                throw new InvalidOperationException(
                    $"Topic '{spec.Name}' already exists on the embedded broker with {existing} partitions, declared {spec.Partitions}. " +
                    "(A producer or consumer probably auto-created it before it was declared.)");
            }
        }
        else if (err != LibrdkafkaMockNative.RespErrNoError)
        {
            throw new InvalidOperationException(
                $"Creating topic '{spec.Name}' ({spec.Partitions} partitions) on the embedded broker failed: {LibrdkafkaMockNative.ErrorText(err)}.");
        }
    }

    /// <summary>Creates every topic (see <see cref="CreateTopic"/>).</summary>
    public void CreateTopics(IEnumerable<TopicSpec> specs)
    {
        ArgumentNullException.ThrowIfNull(specs);
        foreach (var spec in specs)
        {
            CreateTopic(spec);
        }
    }

    /// <summary>Partition count of a topic from cluster metadata, or 0 if it does not exist.</summary>
    public int PartitionCount(string topic, TimeSpan timeout)
    {
        IAdminClient admin;
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_disposed, this);
            _metadataClient ??= new AdminClientBuilder(new AdminClientConfig
            {
                BootstrapServers = BootstrapServers,
                ClientId = "kafkaclicks-embedded-broker-metadata",
                // Metadata requests must not auto-create the topic being checked.
                AllowAutoCreateTopics = false,
            }).SetLogHandler(_logHandler).Build();
            admin = _metadataClient;
        }

        var md = admin.GetMetadata(topic, timeout);
        var t = md.Topics.FirstOrDefault(x => x.Topic == topic);
        return t is null || t.Error.IsError ? 0 : t.Partitions.Count;
    }

    /// <summary>
    /// Takes every broker of the cluster down (connections closed, new ones refused) or brings them back up, so
    /// fault tests can make the broker unreachable the way a network partition would.
    /// </summary>
    public void SetReachable(bool reachable)
    {
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_mcluster == IntPtr.Zero, this);
            for (var broker = 1; broker <= BrokerCount; broker++)
            {
                var err = reachable
                    ? LibrdkafkaMockNative.rd_kafka_mock_broker_set_up(_mcluster, broker)
                    : LibrdkafkaMockNative.rd_kafka_mock_broker_set_down(_mcluster, broker);
                if (err != 0)
                {
                    throw new InvalidOperationException($"could not set broker {broker} {(reachable ? "up" : "down")} (librdkafka error {err})");
                }
            }
        }
    }

    /// <summary>
    /// Answers the next requests of the Kafka API <paramref name="apiKey"/> (from any client) with <paramref name="errors"/>,
    /// one each, in order, so tests can see how a client takes a broker's refusal, such as a fenced group member.
    /// </summary>
    public void FailNextRequests(short apiKey, params ErrorCode[] errors)
    {
        ArgumentNullException.ThrowIfNull(errors);
        lock (_gate)
        {
            ObjectDisposedException.ThrowIf(_mcluster == IntPtr.Zero, this);
            var codes = errors.Select(e => (int)e).ToArray();
            LibrdkafkaMockNative.rd_kafka_mock_push_request_errors_array(_mcluster, apiKey, (UIntPtr)codes.Length, codes);
        }
    }

    /// <summary>Stops the forwarder (if any), destroys the mock cluster and its handle.</summary>
    public void Dispose()
    {
        IAdminClient? admin;
        lock (_gate)
        {
            if (_disposed)
            {
                return;
            }

            _disposed = true;
            admin = _metadataClient;
            _metadataClient = null;
        }

        admin?.Dispose();
        DestroyNative();
    }

    private void DestroyNative()
    {
        _forwarder?.Dispose();
        if (_mcluster != IntPtr.Zero)
        {
            LibrdkafkaMockNative.rd_kafka_mock_cluster_destroy(_mcluster);
            _mcluster = IntPtr.Zero;
        }

        if (_rk != IntPtr.Zero)
        {
            LibrdkafkaMockNative.rd_kafka_destroy(_rk);
            _rk = IntPtr.Zero;
        }
    }
}
