using KafkaClicks.Aggregator;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Topology;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaClicks.UnitTests.ServiceDefaults;

public class ImpressionLifetimeConfigurationTests
{
    private static IConfiguration Configuration(params (string Key, string Value)[] settings) =>
        new ConfigurationBuilder().AddInMemoryCollection(settings.Select(s => new KeyValuePair<string, string?>(s.Key, s.Value))).Build();

    [Fact]
    public void The_lifetime_defaults_to_an_hour_and_reaches_the_aggregator()
    {
        Assert.Equal(TimeSpan.FromHours(1), ImpressionLifetimeConfiguration.Read(Configuration()).Lifetime);
        var configured = Configuration(("Impressions:Lifetime", "06:00:00"));
        Assert.Equal(TimeSpan.FromHours(6), ImpressionLifetimeConfiguration.Read(configured).Lifetime);
        Assert.Equal(TimeSpan.FromHours(6), AggregatorTopics.Read(configured).ImpressionLifetime);
    }

    [Fact]
    public void The_aggregator_role_takes_its_lifetime_from_the_shared_setting()
    {
        var builder = Host.CreateApplicationBuilder();
        builder.Configuration.AddInMemoryCollection([new KeyValuePair<string, string?>("Impressions:Lifetime", "03:00:00")]);
        builder.AddAggregator();
        using var host = builder.Build();
        Assert.Equal(TimeSpan.FromHours(3), host.Services.GetRequiredService<IOptions<AggregationOptions>>().Value.ImpressionLifetime);
    }

    [Theory]
    [InlineData("Aggregator:ImpressionLifetime")]
    [InlineData("Ingest:Tokens:Lifetime")]
    [InlineData("Aggregator:DedupeHorizon")]
    [InlineData("Reconciler:DedupeLookback")]
    public void A_setting_the_lifetime_replaced_is_refused_naming_it(string replaced)
    {
        var error = Assert.Throws<KafkaClicksConfigurationException>(() => ImpressionLifetimeConfiguration.Read(Configuration((replaced, "00:10:00"))));
        Assert.Contains(replaced, error.Message);
        Assert.Contains("Impressions:Lifetime", error.Message);
    }

    [Theory]
    [InlineData("00:00:00")]
    [InlineData("-00:05:00")]
    public void A_lifetime_of_zero_or_less_is_refused(string lifetime)
    {
        var error = Assert.Throws<KafkaClicksConfigurationException>(() => ImpressionLifetimeConfiguration.Read(Configuration(("Impressions:Lifetime", lifetime))));
        Assert.Equal(ImpressionOptions.NonPositiveLifetime, error.Message);
    }
}
