using KafkaClicks.Aggregator;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Topology;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Streamiz.Kafka.Net;

namespace KafkaClicks.IntegrationTests.Aggregator;

/// <summary>
/// Aggregator:Guarantee. Exactly-once itself cannot run here (the embedded broker drops transactional offset commits,
/// and no real cluster is available), so these check what the product controls: what Streamiz is asked for, and
/// that the embedded broker refuses rather than pretending.
/// </summary>
[Trait("Storage", "none")]
public class GuaranteeTests
{
    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();

    [Fact]
    public void At_least_once_commits_every_10_s_and_exactly_once_asks_Streamiz_for_transactions_committed_every_second()
    {
        var atLeastOnce = AggregatorService.CreateStreamConfig(Configuration(), new AggregationOptions());
        var exactlyOnce = AggregatorService.CreateStreamConfig(Configuration(), new AggregationOptions { Guarantee = AggregatorGuarantee.ExactlyOnce });
        var exactlyOnceEvery5s = AggregatorService.CreateStreamConfig(Configuration(),
            new AggregationOptions { Guarantee = AggregatorGuarantee.ExactlyOnce, CommitInterval = TimeSpan.FromSeconds(5) });

        Assert.Equal((ProcessingGuarantee.AT_LEAST_ONCE, 10_000L), (atLeastOnce.Guarantee, atLeastOnce.CommitIntervalMs));
        Assert.Equal((ProcessingGuarantee.EXACTLY_ONCE, 1_000L), (exactlyOnce.Guarantee, exactlyOnce.CommitIntervalMs));
        Assert.Equal((ProcessingGuarantee.EXACTLY_ONCE, 5_000L), (exactlyOnceEvery5s.Guarantee, exactlyOnceEvery5s.CommitIntervalMs));
    }

    [Fact]
    public async Task The_embedded_broker_refuses_an_exactly_once_aggregator_and_serves_every_other_role()
    {
        var configuration = Configuration(("Kafka:BootstrapServers", ""), ("Aggregator:Guarantee", "ExactlyOnce"));

        var refused = await Assert.ThrowsAsync<KafkaClicksConfigurationException>(() => KafkaClicksHost.StartBrokerAsync(configuration, Role.All));
        Assert.Contains("Kafka:BootstrapServers", refused.Message, StringComparison.Ordinal);

        // The same configuration is fine for a process that runs no aggregator (one file serves every role).
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.Ingest | Role.Sink | Role.Query);
        Assert.StartsWith("127.0.0.1:", broker.BootstrapServers, StringComparison.Ordinal);
    }

    [Fact]
    public void Exactly_once_refuses_a_commit_interval_the_broker_would_abort_as_a_transaction()
    {
        static AggregationOptions Resolve(params (string Key, string Value)[] settings)
        {
            var builder = Host.CreateApplicationBuilder();
            builder.Configuration.AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value)));
            builder.AddAggregator();
            using var services = builder.Services.BuildServiceProvider();
            return services.GetRequiredService<IOptions<AggregationOptions>>().Value;
        }

        // The producer's transaction timeout is 60 s by default: a 40 s transaction is too close to it.
        var error = Assert.Throws<OptionsValidationException>(() =>
            Resolve(("Aggregator:Guarantee", "ExactlyOnce"), ("Aggregator:CommitInterval", "00:00:40")));
        Assert.Contains("transaction timeout", error.Message, StringComparison.Ordinal);

        Assert.Equal(TimeSpan.FromSeconds(40), Resolve(("Aggregator:Guarantee", "ExactlyOnce"), ("Aggregator:CommitInterval", "00:00:40"),
            ("Kafka:Client:TransactionTimeoutMs", "120000")).EffectiveCommitInterval);
        Assert.Equal(TimeSpan.FromSeconds(40), Resolve(("Aggregator:Guarantee", "ExactlyOnce"), ("Aggregator:CommitInterval", "00:00:40"),
            ("Kafka:Producer:transaction.timeout.ms", "120000")).EffectiveCommitInterval);
        Assert.Equal(TimeSpan.FromSeconds(40), Resolve(("Aggregator:CommitInterval", "00:00:40")).EffectiveCommitInterval);
    }
}
