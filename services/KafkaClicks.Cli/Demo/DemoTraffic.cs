using System.Net;
using KafkaClicks.Ingest;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Hosting.Server;
using Microsoft.AspNetCore.Hosting.Server.Features;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.Cli.Demo;

/// <summary>
/// Steady demo clicks through the real HTTP click endpoint: tokens minted in-process (as a frontend library
/// would), a skewed choice of ads so some are hot, and a few repeated clicks that must not be counted.
/// </summary>
public sealed partial class DemoTraffic : BackgroundService
{
    private const int ClicksPerSecond = 25;
    private readonly ImpressionMinter _minter;
    private readonly IServer _server;
    private readonly IHostApplicationLifetime _lifetime;
    private readonly ILogger<DemoTraffic> _logger;

    public DemoTraffic(ImpressionMinter minter, IServer server, IHostApplicationLifetime lifetime, ILogger<DemoTraffic> logger)
    {
        _minter = minter;
        _server = server;
        _lifetime = lifetime;
        _logger = logger;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        var started = new TaskCompletionSource();
        using (_lifetime.ApplicationStarted.Register(() => started.TrySetResult()))
        {
            await started.Task.WaitAsync(stoppingToken);
        }

        var address = _server.Features.Get<IServerAddressesFeature>()?.Addresses.FirstOrDefault() ?? "http://127.0.0.1:8080";
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false }) { BaseAddress = new Uri(address.Replace("0.0.0.0", "127.0.0.1", StringComparison.Ordinal)) };
        using var timer = new PeriodicTimer(TimeSpan.FromSeconds(1.0 / ClicksPerSecond));
        var random = new Random();
        string? previous = null;
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            // Ad ids 1..30 with a skew: low ids get most of the clicks.
            var adId = 1 + (long)Math.Floor(Math.Pow(random.NextDouble(), 2.5) * (DemoData.Advertisers * DemoData.AdsPerAdvertiser));
            var token = random.NextDouble() < 0.05 && previous is not null ? previous : _minter.Mint(adId).Token;
            previous = token;
            try
            {
                using var response = await http.GetAsync(new Uri($"/c/{token}", UriKind.Relative), stoppingToken);
                if (response.StatusCode != HttpStatusCode.Redirect)
                {
                    LogUnexpected((int)response.StatusCode);
                }
            }
            catch (HttpRequestException e)
            {
                LogUnexpected(0, e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 9001, Level = LogLevel.Warning, Message = "Demo click answered {Status} {Error}")]
    private partial void LogUnexpected(int status, string error = "");
}

public static class DemoExtensions
{
    /// <summary>Adds the demo traffic generator (needs the ingest role in the same process).</summary>
    public static WebApplicationBuilder AddDemo(this WebApplicationBuilder builder)
    {
        builder.Services.AddHostedService<DemoTraffic>();
        return builder;
    }
}
