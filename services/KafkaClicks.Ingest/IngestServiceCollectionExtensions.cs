using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

public static class IngestServiceCollectionExtensions
{
    /// <summary>Registers the ingest role: tokens, ad cache, dedupe, the click producer. Map it with <see cref="IngestEndpoints.MapIngest"/>.</summary>
    public static IHostApplicationBuilder AddIngest(this IHostApplicationBuilder builder)
    {
        var services = builder.Services;
        services.AddOptions<IngestOptions>().BindConfiguration(IngestOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        services.AddSingleton<IValidateOptions<IngestOptions>>(sp =>
            new IngestOptionsValidator(requirePublicBaseUrl: !sp.GetRequiredService<IHostEnvironment>().IsDevelopment()));
        services.TryAddSingleton(TimeProvider.System);
        services.AddPostgres(builder.Configuration);
        services.AddRedis(builder.Configuration);
        services.AddContractSerializers();
        services.AddSingleton<ImpressionTokens>();
        services.AddSingleton<AdDirectory>();
        services.AddSingleton<ImpressionDeduplicator>();
        services.AddSingleton<ClickEventProducer>();
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
