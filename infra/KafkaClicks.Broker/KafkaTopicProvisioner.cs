using Confluent.Kafka;
using Confluent.Kafka.Admin;
using KafkaClicks.Contracts;

namespace KafkaClicks.Broker;

/// <summary>Creates declared topics on a real Kafka cluster (AdminClient CreateTopics).</summary>
public sealed class KafkaTopicProvisioner
{
    private readonly AdminClientConfig _config;

    /// <summary>
    /// <paramref name="clientConfig"/>: extra admin client properties (security.protocol, sasl.*, ...);
    /// bootstrap.servers is taken from <paramref name="bootstrapServers"/>.
    /// </summary>
    public KafkaTopicProvisioner(string bootstrapServers, IEnumerable<KeyValuePair<string, string>>? clientConfig = null)
    {
        ArgumentException.ThrowIfNullOrWhiteSpace(bootstrapServers);
        _config = new AdminClientConfig(clientConfig?.ToDictionary(kv => kv.Key, kv => kv.Value) ?? [])
        {
            BootstrapServers = bootstrapServers,
        };
        _config.ClientId ??= "kafkaclicks-topic-provisioner";
    }

    /// <summary>
    /// True when <paramref name="e"/> (from <see cref="EnsureTopicsAsync"/>) says the cluster did not answer, as opposed to
    /// refusing a topic or disagreeing with its declaration.
    /// </summary>
    public static bool IsUnreachable(Exception e) =>
        (e as KafkaException ?? e.InnerException as KafkaException)?.Error.Code
            is ErrorCode.Local_TimedOut or ErrorCode.Local_Transport or ErrorCode.Local_AllBrokersDown or ErrorCode.RequestTimedOut;

    /// <summary>Where the admin client's librdkafka log lines go (null: librdkafka's default, stderr).</summary>
    public Action<IClient, LogMessage>? LogHandler { get; init; }

    /// <summary>Timeout for the CreateTopics request and the metadata check. Default 30 s.</summary>
    public TimeSpan Timeout { get; init; } = TimeSpan.FromSeconds(30);

    /// <summary>
    /// Creates every topic with its partitions, replication factor and configs. Topics that already exist keep their
    /// configs, except that a <c>retention.ms</c> shorter than declared is raised to the declaration (never lowered: a
    /// longer one an operator set stays), because what a topic must keep can grow with the configuration: the impression
    /// store's changelog keeps <c>Impressions:Lifetime</c> and margins, clicks.raw <c>Kafka:RawRetention</c>. Their
    /// partition count is never changed; one whose count differs from the declaration throws
    /// <see cref="TopicPartitionCountException"/> after every other topic was created. Any other failure throws
    /// <see cref="TopicProvisioningException"/> naming the topic and the reason.
    /// </summary>
    public async Task EnsureTopicsAsync(IEnumerable<TopicSpec> topics, CancellationToken cancellationToken = default)
    {
        ArgumentNullException.ThrowIfNull(topics);
        var specs = topics.ToList();
        foreach (var s in specs)
        {
            s.Validate();
        }

        if (specs.Count == 0)
        {
            return;
        }

        using var admin = new AdminClientBuilder(_config).SetLogHandler(LogHandler).Build();
        var specifications = specs.Select(s => new TopicSpecification
        {
            Name = s.Name,
            NumPartitions = s.Partitions,
            ReplicationFactor = s.ReplicationFactor,
            Configs = s.Configs.ToDictionary(kv => kv.Key, kv => kv.Value),
        }).ToList();

        var existing = new List<TopicSpec>();
        var alreadyThere = new List<TopicSpec>();
        try
        {
            await admin.CreateTopicsAsync(specifications, new CreateTopicsOptions { RequestTimeout = Timeout, OperationTimeout = Timeout })
                .WaitAsync(cancellationToken).ConfigureAwait(false);
        }
        catch (CreateTopicsException ex)
        {
            var failures = new List<string>();
            foreach (var r in ex.Results)
            {
                if (r.Error.Code == ErrorCode.TopicAlreadyExists)
                {
                    existing.Add(specs.First(s => s.Name == r.Topic));
                    alreadyThere.Add(specs.First(s => s.Name == r.Topic));
                }
                else if (r.Error.IsError)
                {
                    failures.Add($"'{r.Topic}': {r.Error.Code} ({r.Error.Reason})");
                }
            }

            if (failures.Count > 0)
            {
                throw new TopicProvisioningException(
                    $"Creating Kafka topics on {_config.BootstrapServers} failed: {string.Join("; ", failures)}", ex);
            }
        }
        catch (KafkaException ex) when (ex.Error.Code == ErrorCode.Local_UnsupportedFeature)
        {
            // A broker without the CreateTopics API (e.g. `kafkaclicks broker`, which created every topic itself):
            // nothing can be created here, so every declared topic must already be there as declared.
            existing.AddRange(specs);
        }
        catch (KafkaException ex)
        {
            throw new TopicProvisioningException(
                $"Creating Kafka topics on {_config.BootstrapServers} failed: {ex.Error.Code} ({ex.Error.Reason})", ex);
        }

        if (alreadyThere.Count > 0)
        {
            await RaiseRetentionAsync(admin, alreadyThere, cancellationToken).ConfigureAwait(false);
        }

        if (existing.Count > 0)
        {
            CheckPartitionCounts(admin, existing);
        }
    }

    /// <summary>Raises the <c>retention.ms</c> of existing topics that keep less than declared (see <see cref="EnsureTopicsAsync"/>).</summary>
    private async Task RaiseRetentionAsync(IAdminClient admin, List<TopicSpec> existing, CancellationToken cancellationToken)
    {
        const string retention = TopicSpec.ConfigKeys.RetentionMs;
        var declared = new Dictionary<string, long>();
        foreach (var spec in existing)
        {
            if (spec.Configs.TryGetValue(retention, out var text) && long.TryParse(text, System.Globalization.CultureInfo.InvariantCulture, out var ms) && ms > 0)
            {
                declared[spec.Name] = ms;
            }
        }

        if (declared.Count == 0)
        {
            return;
        }

        var raise = new Dictionary<ConfigResource, List<ConfigEntry>>();
        try
        {
            var described = await admin.DescribeConfigsAsync(
                    declared.Keys.Select(name => new ConfigResource { Type = ResourceType.Topic, Name = name }).ToList(),
                    new DescribeConfigsOptions { RequestTimeout = Timeout })
                .WaitAsync(cancellationToken).ConfigureAwait(false);
            foreach (var result in described)
            {
                // -1 keeps everything: nothing to raise.
                if (result.Entries.TryGetValue(retention, out var entry)
                    && long.TryParse(entry.Value, System.Globalization.CultureInfo.InvariantCulture, out var current)
                    && current >= 0 && current < declared[result.ConfigResource.Name])
                {
                    raise[result.ConfigResource] =
                    [
                        new ConfigEntry
                        {
                            Name = retention,
                            Value = declared[result.ConfigResource.Name].ToString(System.Globalization.CultureInfo.InvariantCulture),
                            IncrementalOperation = AlterConfigOpType.Set,
                        },
                    ];
                }
            }

            if (raise.Count > 0)
            {
                await admin.IncrementalAlterConfigsAsync(raise, new IncrementalAlterConfigsOptions { RequestTimeout = Timeout })
                    .WaitAsync(cancellationToken).ConfigureAwait(false);
            }
        }
        catch (KafkaException ex)
        {
            throw new TopicProvisioningException(
                $"Raising retention.ms of existing Kafka topics on {_config.BootstrapServers} to their declaration failed: {ex.Error.Code} ({ex.Error.Reason}). "
                + $"Topics: {string.Join(", ", declared.Select(d => $"'{d.Key}' {d.Value} ms"))}.", ex);
        }
    }

    private void CheckPartitionCounts(IAdminClient admin, List<TopicSpec> existing)
    {
        var missing = new List<string>();
        var differing = new List<string>();
        foreach (var spec in existing)
        {
            var md = admin.GetMetadata(spec.Name, Timeout);
            var t = md.Topics.FirstOrDefault(x => x.Topic == spec.Name);
            var count = t is null || t.Error.IsError ? 0 : t.Partitions.Count;
            if (count == 0)
            {
                missing.Add($"'{spec.Name}' does not exist (declared with {spec.Partitions} partitions)");
            }
            else if (count != spec.Partitions)
            {
                differing.Add($"'{spec.Name}' has {count} partitions, declared {spec.Partitions}");
            }
        }

        if (missing.Count > 0)
        {
            throw new TopicProvisioningException(
                $"Kafka topics on {_config.BootstrapServers} do not match their declaration: {string.Join("; ", missing.Concat(differing))}.");
        }

        if (differing.Count > 0)
        {
            throw new TopicPartitionCountException(
                $"Kafka topics on {_config.BootstrapServers} do not have their declared partition count: {string.Join("; ", differing)}. " +
                "The provisioner never changes a topic's partition count. clicks.raw's decides which aggregator task counts each ad, " +
                "so ingest and the aggregator use only the declared one (Kafka:ClicksRawPartitions) and stop producing and counting " +
                "while the topic has another; to change it on purpose follow README.md, \"Changing clicks.raw's partition count\". " +
                "For the other topics set Kafka:ClicksMinutePartitions or Kafka:ClicksLatePartitions to their count.");
        }
    }
}

/// <summary>The declared topics could not be created or do not match their declaration; the message says which and why.</summary>
public class TopicProvisioningException : InvalidOperationException
{
    public TopicProvisioningException(string message) : base(message) { }

    public TopicProvisioningException(string message, Exception inner) : base(message, inner) { }

    public TopicProvisioningException() { }
}

/// <summary>Every declared topic exists, but some have another partition count than declared (never changed by the provisioner).</summary>
public sealed class TopicPartitionCountException : TopicProvisioningException
{
    public TopicPartitionCountException(string message) : base(message) { }

    public TopicPartitionCountException(string message, Exception inner) : base(message, inner) { }

    public TopicPartitionCountException() { }
}
