using KafkaClicks.Contracts;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KafkaClicks.ServiceDefaults;

/// <summary>Binds the one impression lifetime (<c>Impressions:Lifetime</c>) that ingest, the aggregator and reconciliation share.</summary>
public static class ImpressionLifetimeConfiguration
{
    /// <summary>Registers <see cref="ImpressionOptions"/>, checked when the host starts (see <see cref="Read"/>).</summary>
    public static IServiceCollection AddImpressionOptions(this IServiceCollection services)
    {
        // Each role that reads the lifetime asks for it; a process running several binds and checks it once.
        if (services.Any(d => d.ServiceType == typeof(IValidateOptions<ImpressionOptions>)))
        {
            return services;
        }

        services.AddOptions<ImpressionOptions>().BindConfiguration(ImpressionOptions.Section).ValidateOnStart();
        services.AddSingleton<IValidateOptions<ImpressionOptions>>(sp => new Validator(sp.GetRequiredService<IConfiguration>()));
        return services;
    }

    /// <summary>
    /// The impression options of <paramref name="configuration"/>; a lifetime of zero or less, or a setting it replaced,
    /// is a <see cref="KafkaClicksConfigurationException"/> naming it.
    /// </summary>
    public static ImpressionOptions Read(IConfiguration configuration)
    {
        var options = configuration.GetSection(ImpressionOptions.Section).Get<ImpressionOptions>() ?? new ImpressionOptions();
        if (Problem(configuration, options) is { } problem)
        {
            throw new KafkaClicksConfigurationException(problem);
        }

        return options;
    }

    private static string? Problem(IConfiguration configuration, ImpressionOptions options)
    {
        if (ImpressionOptions.ReplacedSettings.FirstOrDefault(key => configuration[key] is not null) is { } replaced)
        {
            return $"{replaced} is no longer read: set Impressions:Lifetime instead, the one impression lifetime every role shares "
                + "(how long an impression can be clicked and counted; give every role the same value).";
        }

        return options.Lifetime > TimeSpan.Zero ? null : ImpressionOptions.NonPositiveLifetime;
    }

    private sealed class Validator(IConfiguration configuration) : IValidateOptions<ImpressionOptions>
    {
        public ValidateOptionsResult Validate(string? name, ImpressionOptions options) =>
            Problem(configuration, options) is { } problem ? ValidateOptionsResult.Fail(problem) : ValidateOptionsResult.Success;
    }
}
