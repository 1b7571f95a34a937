using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Topology;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Aggregator;

public static class AggregatorServiceCollectionExtensions
{
    /// <summary>Registers the aggregator role: the Streamiz topology from clicks.raw to clicks.minute and clicks.late.</summary>
    public static IHostApplicationBuilder AddAggregator(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<AggregationOptions>().BindConfiguration(AggregationOptions.Section).ValidateDataAnnotations()
            .Validate(o => o.CommitInterval is null || o.CommitInterval > TimeSpan.Zero, "Aggregator:CommitInterval must be positive.")
            .Validate(o => Enum.IsDefined(o.Guarantee), "Aggregator:Guarantee must be AtLeastOnce or ExactlyOnce.")
            .Validate<IConfiguration>(
                (o, configuration) => o.Guarantee != AggregatorGuarantee.ExactlyOnce
                    || o.EffectiveCommitInterval < TransactionTimeout(configuration) / 2,
                "Aggregator:CommitInterval must be under half the producer's transaction timeout (Kafka:Client:TransactionTimeoutMs or transaction.timeout.ms, "
                + "60 s by default) with ExactlyOnce: each commit ends a transaction, and the broker aborts one that runs longer.")
            .ValidateOnStart();
        builder.Services.AddImpressionOptions();
        builder.Services.AddOptions<AggregationOptions>().PostConfigure<IOptions<ImpressionOptions>>(
            (o, impressions) => o.ImpressionLifetime = impressions.Value.Lifetime);
        builder.Services.AddKafka();
        builder.Services.AddSingleton<AggregatorService>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<AggregatorService>());
        builder.Services.AddHealthChecks().Add(new HealthCheckRegistration(
            "aggregator", sp => sp.GetRequiredService<AggregatorService>(), HealthStatus.Unhealthy, [ServiceDefaultsExtensions.ReadyTag]));
        return builder;
    }

    /// <summary>The transaction timeout Streamiz' producers get: Kafka:Client's or Kafka:Producer's, in either spelling.</summary>
    private static TimeSpan TransactionTimeout(IConfiguration configuration)
    {
        var producer = new Confluent.Kafka.ProducerConfig();
        new KafkaClientFactory(configuration).Overlay(producer, "Producer", new HashSet<string>());
        return TimeSpan.FromMilliseconds(producer.TransactionTimeoutMs ?? 60_000);
    }
}

/// <summary>The aggregator's internal topics, for the topic catalog.</summary>
public static class AggregatorTopics
{
    public static IReadOnlyList<InternalTopic> Internal(IConfiguration configuration, int rawPartitions)
    {
        var options = Read(configuration);
        return ClickAggregationTopology.InternalTopics(KafkaOptions.NamesOf(configuration).Of(options.ApplicationId), options, rawPartitions);
    }

    /// <summary>The aggregator's options as the role binds them: section <c>Aggregator</c> and the shared <c>Impressions:Lifetime</c>.</summary>
    public static AggregationOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(AggregationOptions.Section).Get<AggregationOptions>() ?? new AggregationOptions();
        options.ImpressionLifetime = ImpressionLifetimeConfiguration.Read(configuration).Lifetime;
        return options;
    }
}
