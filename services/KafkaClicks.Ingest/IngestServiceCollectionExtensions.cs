using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Ingest;

public static class IngestServiceCollectionExtensions
{
    /// <summary>Registers the ingest role: tokens, ad cache, dedupe, the click producer. Map it with <see cref="IngestEndpoints.MapIngest"/>.</summary>
    public static IHostApplicationBuilder AddIngest(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<IngestOptions>().BindConfiguration(IngestOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddImpressionOptions();
        services.AddSingleton<IValidateOptions<IngestOptions>>(sp =>
            new IngestOptionsValidator(requirePublicBaseUrl: !sp.GetRequiredService<IHostEnvironment>().IsDevelopment()));
        services.TryAddSingleton(TimeProvider.System);
        // Clicks of known ads are routed from the local ad directory, so PostgreSQL is not part of ingest's readiness.
        services.AddPostgres(builder.Configuration, readiness: false);
        services.AddHealthChecks().Add(new HealthCheckRegistration(
            "ad-directory", sp => new AdDirectoryHealthCheck(sp.GetRequiredService<LocalAdDirectory>(), sp.GetRequiredService<NpgsqlDataSource>()),
            HealthStatus.Unhealthy, [ServiceDefaultsExtensions.ReadyTag]));
        services.AddRedis(builder.Configuration);
        services.AddContractSerializers();
        services.AddKafka();
        services.AddSingleton<ImpressionTokens>();
        services.AddSingleton<LocalAdDirectory>();
        services.AddSingleton<AdDirectory>();
        services.AddSingleton<AdDirectorySync>();
        services.AddHostedService(sp => sp.GetRequiredService<AdDirectorySync>());
        services.AddSingleton<ImpressionDeduplicator>();
        services.AddSingleton<ClickEventProducer>();
        services.AddHealthChecks().Add(new HealthCheckRegistration(
            "clicks-raw-partitions", sp => sp.GetRequiredService<ClickEventProducer>(), HealthStatus.Degraded, [ServiceDefaultsExtensions.ReadyTag]));
        services.AddSingleton<HotAdDetector>();
        services.AddSingleton<ImpressionMinter>();
        services.AddSingleton<FrontendAuthenticator>();
        services.AddSingleton<ClickSpool>();
        services.AddSingleton<SpoolForwarder>();
        services.AddHostedService(sp => sp.GetRequiredService<SpoolForwarder>());
        services.AddSingleton<ClickHandler>();
        services.AddHostedService<IngestWarmup>();
        return builder;
    }
}
