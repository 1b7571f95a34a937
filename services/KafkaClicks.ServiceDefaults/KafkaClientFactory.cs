using Confluent.Kafka;
using KafkaClicks.Contracts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// The one place every Kafka client of the product (each role's producers and consumers, the reconciler's readers, the
/// command-line tools, topic provisioning and the aggregator's Streamiz clients) gets its settings from, so a setting a
/// secured cluster needs (<c>security.protocol</c>, <c>sasl.*</c>, <c>ssl.*</c>) reaches all of them. A config is, in
/// order: the product's defaults, <c>Kafka:Client</c>, <c>Kafka:Producer</c> or <c>Kafka:Consumer</c>,
/// <c>Kafka:BootstrapServers</c>, then what the client requires to be correct, which no setting overrides.
/// </summary>
/// <remarks>
/// A section's keys are either the properties of Confluent's config classes (<c>SecurityProtocol: SaslSsl</c>, bound as
/// configuration binds them) or librdkafka's own property names (<c>security.protocol: SASL_SSL</c>), passed as they are;
/// librdkafka then refuses an unknown name or a wrong value when the client is built, naming it.
/// </remarks>
public sealed class KafkaClientFactory
{
    private readonly IConfiguration _configuration;

    public KafkaClientFactory(IConfiguration configuration)
    {
        _configuration = configuration;
    }

    /// <summary>A factory for <paramref name="bootstrapServers"/> with no other settings (tests, benchmarks).</summary>
    public static KafkaClientFactory For(string bootstrapServers) =>
        new(new ConfigurationBuilder().AddInMemoryCollection([new($"{KafkaOptions.Section}:BootstrapServers", bootstrapServers)]).Build());

    /// <summary>Kafka:BootstrapServers, read when asked (the host fills it in once the embedded broker has started).</summary>
    public string BootstrapServers => _configuration[$"{KafkaOptions.Section}:BootstrapServers"] is { } servers && !string.IsNullOrWhiteSpace(servers)
        ? servers
        : throw new KafkaClicksConfigurationException(
            "Kafka:BootstrapServers is not set: name the cluster (or the address `kafkaclicks up` / `kafkaclicks broker` printed), " +
            "e.g. KAFKACLICKS_Kafka__BootstrapServers=127.0.0.1:9092.");

    /// <summary>The topic and group names of this deployment (<c>Kafka:NamePrefix</c>).</summary>
    public KafkaNames Names => KafkaOptions.NamesOf(_configuration);

    /// <summary>
    /// How long a consumer's fetch may wait at the broker for records when there are none (librdkafka: 500 ms). A broker
    /// that answers a waiting fetch only when its wait ends (the embedded broker does: records arriving meanwhile wait
    /// for the next fetch) adds up to this much to a click's time to become queryable at each consumer on its way (the
    /// aggregator's and the sink's); Kafka answers as soon as records arrive, so there it only sets how often an idle
    /// consumer asks again. e2e benchmark, embedded broker: freshness p99 3.0-3.3 s at 500 ms, 1.9 s at 100 ms
    /// (with <c>Sink:MaxBatchDelay</c> 200 ms).
    /// </summary>
    public const int DefaultFetchWaitMaxMs = 100;

    /// <summary><c>Kafka:Client</c> alone, without the bootstrap servers: for clients whose servers are decided elsewhere (topic provisioning).</summary>
    public ClientConfig ClientSettings()
    {
        var config = new ClientConfig();
        Apply(config, "Client");
        return config;
    }

    /// <summary>
    /// A producer config: idempotent, lz4, 2 ms linger and a 30 s delivery timeout unless configured otherwise; acks=all
    /// always, since a click is acknowledged to its clicker (the 302) only once every in-sync replica holds it.
    /// <paramref name="required"/> is applied last.
    /// </summary>
    public ProducerConfig ProducerConfig(Action<ProducerConfig>? required = null)
    {
        var config = new ProducerConfig
        {
            EnableIdempotence = true,
            CompressionType = CompressionType.Lz4,
            LingerMs = 2,
            MessageTimeoutMs = 30_000,
        };
        Apply(config, "Client");
        Apply(config, "Producer");
        config.BootstrapServers = BootstrapServers;
        config.Acks = Acks.All;
        required?.Invoke(config);
        return config;
    }

    /// <summary>
    /// A consumer config with the group id <paramref name="groupId"/>, taken as it is (a deployment's own groups go through
    /// <see cref="Names"/> first). A 6 s session timeout, no automatic offset storing and a <see cref="DefaultFetchWaitMaxMs"/>
    /// fetch wait unless configured otherwise; always:
    /// <list type="bullet">
    /// <item>no automatic commits: the sink and the late-click reconciler commit only what is stored in the database, and
    /// the readers never commit;</item>
    /// <item>committed records only: what an exactly-once aggregator's aborted transaction wrote is never read;</item>
    /// <item>the earliest offset where none is committed or the committed one is gone: a new group reads every click
    /// still on the log instead of skipping to its end.</item>
    /// </list>
    /// <paramref name="required"/> (the caller's own needs: partition EOF, max.poll.interval.ms) is applied last.
    /// </summary>
    public ConsumerConfig ConsumerConfig(string groupId, Action<ConsumerConfig>? required = null)
    {
        var config = new ConsumerConfig
        {
            EnableAutoOffsetStore = false,
            SessionTimeoutMs = 6000,
            FetchWaitMaxMs = DefaultFetchWaitMaxMs,
        };
        Apply(config, "Client");
        Apply(config, "Consumer");
        config.BootstrapServers = BootstrapServers;
        config.GroupId = groupId;
        config.EnableAutoCommit = false;
        config.IsolationLevel = IsolationLevel.ReadCommitted;
        config.AutoOffsetReset = AutoOffsetReset.Earliest;
        required?.Invoke(config);
        return config;
    }

    /// <summary>An admin client config: <c>Kafka:Client</c> and the bootstrap servers.</summary>
    public AdminClientConfig AdminConfig()
    {
        var config = new AdminClientConfig();
        Apply(config, "Client");
        config.BootstrapServers = BootstrapServers;
        return config;
    }

    /// <summary>A producer builder over <see cref="ProducerConfig"/>, librdkafka's log lines going to <paramref name="logger"/>.</summary>
    public ProducerBuilder<TKey, TValue> Producer<TKey, TValue>(ILogger? logger, Action<ProducerConfig>? required = null) =>
        new ProducerBuilder<TKey, TValue>(ProducerConfig(required)).LogTo(logger);

    /// <summary>A consumer builder over <see cref="ConsumerConfig"/>, librdkafka's log lines going to <paramref name="logger"/>.</summary>
    public ConsumerBuilder<TKey, TValue> Consumer<TKey, TValue>(string groupId, ILogger? logger, Action<ConsumerConfig>? required = null) =>
        new ConsumerBuilder<TKey, TValue>(ConsumerConfig(groupId, required)).LogTo(logger);

    /// <summary>An admin client builder over <see cref="AdminConfig"/>, librdkafka's log lines going to <paramref name="logger"/>.</summary>
    public AdminClientBuilder Admin(ILogger? logger) => new AdminClientBuilder(AdminConfig()).LogTo(logger);

    /// <summary>
    /// Puts <c>Kafka:Client</c> and <c>Kafka:{<paramref name="role"/>}</c> (Producer or Consumer; null: none) over a config
    /// another library built (Streamiz' clients), except the keys in <paramref name="reserved"/>, which that library decides.
    /// </summary>
    public void Overlay<TConfig>(TConfig config, string? role, IReadOnlySet<string> reserved)
        where TConfig : ClientConfig, new()
    {
        var settings = new TConfig();
        Apply(settings, "Client");
        if (role is not null)
        {
            Apply(settings, role);
        }

        foreach (var (key, value) in settings)
        {
            if (!reserved.Contains(key))
            {
                config.Set(key, value);
            }
        }
    }

    private void Apply(ClientConfig config, string section)
    {
        var settings = _configuration.GetSection($"{KafkaOptions.Section}:{section}");
        settings.Bind(config);
        foreach (var setting in settings.GetChildren())
        {
            // A librdkafka name (they all have a dot) matches no property of the config class, so binding skipped it.
            if (setting.Key.Contains('.', StringComparison.Ordinal) && setting.Value is not null)
            {
                config.Set(setting.Key, setting.Value);
            }
        }
    }
}

public static class KafkaClientFactoryExtensions
{
    /// <summary>Registers <see cref="KafkaOptions"/> (validated at start) and the process's one <see cref="KafkaClientFactory"/>.</summary>
    public static IServiceCollection AddKafka(this IServiceCollection services)
    {
        if (services.Any(d => d.ServiceType == typeof(KafkaClientFactory)))
        {
            return services;
        }

        services.AddOptions<KafkaOptions>().BindConfiguration(KafkaOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.TryAddSingleton(sp => new KafkaClientFactory(sp.GetRequiredService<IConfiguration>()));
        return services;
    }
}
