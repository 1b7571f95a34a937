using System.Net.Http.Headers;
using KafkaClicks.Broker;
using KafkaClicks.Cli.Hosting;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// The query role alone on a local port, over a seeded database, for the benchmarks that send it HTTP: one admin key
/// without a per-key limit (the benchmarks measure the database path, not the rate limiter), the product's clock
/// replaced by <paramref name="clock"/> so that a seed made earlier looks live.
/// </summary>
internal sealed class BenchQueryHost(BrokerHandle broker, WebApplication app) : IAsyncDisposable
{
    public const string AdminKey = "bench-admin-key";

    public static async Task<BenchQueryHost> StartAsync(BenchmarkContext context, string connectionString, TimeProvider clock, bool cacheEnabled)
    {
        var overrides = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Postgres"] = connectionString,
            ["ConnectionStrings:Redis"] = context.Redis,
            ["Kafka:BootstrapServers"] = "",
            ["Query:AdminApiKeys:0"] = AdminKey,
            ["Query:RateLimits:PerKeyPerSecond"] = "1000000",
            ["Query:RateLimits:PerKeyBurst"] = "1000000",
            ["Query:CacheEnabled"] = cacheEnabled ? "true" : "false",
            ["Logging:LogLevel:Default"] = "Warning",
            ["Logging:LogLevel:Microsoft.Hosting.Lifetime"] = "Warning",
            ["Logging:Console:LogToStandardErrorThreshold"] = "Trace",
        };
        var configuration = KafkaClicksHost.LoadConfiguration(overrides);
        var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.Query);
        var app = KafkaClicksHost.Build(Role.Query, broker, overrides, b => b.Services.AddSingleton(clock));
        await app.StartAsync();
        return new BenchQueryHost(broker, app);
    }

    /// <summary>A client of the role with the admin key, holding up to <paramref name="connections"/> connections.</summary>
    public HttpClient CreateClient(int connections)
    {
        var http = new HttpClient(new SocketsHttpHandler { MaxConnectionsPerServer = connections }) { BaseAddress = new Uri(app.Urls.First()) };
        http.DefaultRequestHeaders.Authorization = new AuthenticationHeaderValue("Bearer", AdminKey);
        return http;
    }

    public async ValueTask DisposeAsync()
    {
        await app.StopAsync();
        await app.DisposeAsync();
        await broker.DisposeAsync();
    }
}
