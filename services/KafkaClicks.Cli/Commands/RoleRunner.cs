using KafkaClicks.Cli.Demo;
using KafkaClicks.Cli.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.Cli.Commands;

/// <summary>Runs a set of roles in this process until Ctrl-C: broker (real or embedded), migrations when asked, then the roles.</summary>
public static class RoleRunner
{
    /// <summary>
    /// Runs <paramref name="roles"/>. <paramref name="allInOne"/> (`kafkaclicks up`): every role in this one process, so
    /// click links point at the process's own first address unless <c>Ingest:PublicBaseUrl</c> says otherwise.
    /// </summary>
    public static async Task<int> RunAsync(Role roles, bool demo, bool allInOne, string? urls, CancellationToken cancellationToken)
    {
        var overrides = new Dictionary<string, string?>();
        if (urls is not null)
        {
            overrides["Urls"] = urls;
        }

        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        if (allInOne && string.IsNullOrWhiteSpace(configuration["Ingest:PublicBaseUrl"]) && OwnBaseUrl(configuration["Urls"]) is { } own)
        {
            overrides["Ingest:PublicBaseUrl"] = own;
        }

        using var logging = KafkaClicksHost.CreateLoggerFactory(toStandardError: false);
        await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, roles, loggerFactory: logging, cancellationToken: cancellationToken);
        if (allInOne)
        {
            await KafkaClicksHost.MigrateAsync(configuration, logging, cancellationToken);
        }

        await using var app = KafkaClicksHost.Build(roles, broker, overrides, builder =>
        {
            if (demo)
            {
                builder.AddDemo();
            }
        });
        if (demo)
        {
            await DemoData.SeedAsync(app.Services, cancellationToken);
        }

        await app.StartAsync(cancellationToken);
        PrintBanner(app, roles, broker.Description, demo, configuration);
        await app.WaitForShutdownAsync(cancellationToken);

        // A role whose loop failed stops the whole process (the host's default); that is a failure, not a normal stop,
        // so a supervisor restarts it and the reason is on the last line.
        var failed = app.Services.GetServices<IHostedService>().OfType<BackgroundService>()
            .Where(service => service.ExecuteTask is { IsFaulted: true })
            .Select(service => $"{service.GetType().Name} failed: {service.ExecuteTask!.Exception!.GetBaseException().Message}")
            .ToList();
        if (failed.Count > 0)
        {
            await Console.Error.WriteLineAsync($"kafkaclicks: stopped because {string.Join("; ", failed)}");
            return CliErrors.Failed;
        }

        return CliErrors.Ok;
    }

    /// <summary>The first of <paramref name="urls"/> as a client can reach it (a wildcard host becomes 127.0.0.1).</summary>
    private static string? OwnBaseUrl(string? urls)
    {
        var first = (urls ?? "http://127.0.0.1:8080").Split(';', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries).FirstOrDefault();
        if (first is null)
        {
            return null;
        }

        foreach (var wildcard in new[] { "://0.0.0.0", "://*", "://+", "://[::]" })
        {
            first = first.Replace(wildcard, "://127.0.0.1", StringComparison.Ordinal);
        }

        return Uri.TryCreate(first, UriKind.Absolute, out var uri) ? uri.GetLeftPart(UriPartial.Authority) : null;
    }

    private static void PrintBanner(WebApplication app, Role roles, string broker, bool demo, IConfiguration configuration)
    {
        var url = app.Urls.FirstOrDefault() ?? "http://127.0.0.1:8080";
        Console.WriteLine();
        Console.WriteLine($"KafkaClicks is running: roles {roles.ToString().ToLowerInvariant()}; broker {broker}");
        if (roles.HasFlag(Role.Query))
        {
            Console.WriteLine($"  dashboard        {url}/");
            Console.WriteLine($"  ad clicks        {url}/v1/ads/{{adId}}/clicks?granularity=1m");
        }

        if (roles.HasFlag(Role.Ingest))
        {
            Console.WriteLine($"  mint impression  POST {url}/v1/impressions  {{\"adId\":1}}");
            Console.WriteLine($"  click            GET  {url}/c/{{token}}");
        }

        Console.WriteLine($"  health, metrics  {url}/healthz  {url}/readyz  {url}/metrics");
        if (demo)
        {
            var frontend = configuration.GetSection("Ingest:FrontendApiKeys").Get<string[]>()?.FirstOrDefault();
            var admin = configuration.GetSection("Query:AdminApiKeys").Get<string[]>()?.FirstOrDefault();
            Console.WriteLine("Local dev API keys (generated into .local/kafkaclicks.json, never committed):");
            Console.WriteLine($"  frontend    {frontend}");
            Console.WriteLine($"  admin       {admin}");
            Console.WriteLine($"  advertiser  {configuration["Demo:AdvertiserApiKey"]}  (advertiser {DemoData.DemoAdvertiserId}, ads {DemoData.FirstAdId}..{DemoData.FirstAdId + DemoData.AdsPerAdvertiser - 1})");
            Console.WriteLine($"Demo traffic is flowing. Try: curl -s -H 'Authorization: Bearer {admin}' '{url}/v1/ads/{DemoData.FirstAdId}/clicks'");
        }

        Console.WriteLine("Ctrl-C stops it.");
    }
}
