using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Diagnostics.HealthChecks;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.HttpOverrides;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Diagnostics.HealthChecks;
using Microsoft.Extensions.Hosting;
using Npgsql;
using OpenTelemetry.Metrics;
using OpenTelemetry.Resources;
using OpenTelemetry.Trace;
using StackExchange.Redis;

namespace KafkaClicks.ServiceDefaults;

/// <summary>Hosting defaults every role shares: telemetry, health, ProblemDetails and the process-wide clients.</summary>
public static class ServiceDefaultsExtensions
{
    /// <summary>Tag for health checks that decide readiness (/readyz); /healthz only says the process is alive.</summary>
    public const string ReadyTag = "ready";

    /// <summary>Meters of every KafkaClicks component start with this prefix.</summary>
    public const string MeterPrefix = "KafkaClicks.";

    /// <summary>Histogram buckets for latencies in seconds, from 0.5 ms to 10 s.</summary>
    public static readonly IReadOnlyList<double> LatencyBucketsSeconds =
        [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10];

    public static IHostApplicationBuilder AddServiceDefaults(this IHostApplicationBuilder builder)
    {
        builder.Services.AddProblemDetails(options => options.CustomizeProblemDetails = Problems.Describe);

        // Every role's process documents the routes it serves at /openapi/v1.json (roles add their own transformers).
        builder.Services.AddOpenApi(options => options.AddDocumentTransformer((document, _, _) =>
        {
            document.Info.Title = "KafkaClicks API";
            return Task.CompletedTask;
        }));
        builder.Services.AddHealthChecks();
        builder.Services.Configure<ForwardedHeadersOptions>(options => TrustProxies(options, builder.Configuration));
        var sampleRatio = builder.Configuration.GetValue("Telemetry:TraceSampleRatio", 0.01);
        var otlp = builder.Configuration["Telemetry:OtlpEndpoint"];
        var telemetry = builder.Services.AddOpenTelemetry()
            .ConfigureResource(r => r.AddService("kafkaclicks"))
            .WithMetrics(metrics => metrics
                .AddMeter(MeterPrefix + "*")

                // The runtime's own: collections and pause time of the GC, thread pool queue, lock contention.
                .AddMeter("System.Runtime")
                .AddAspNetCoreInstrumentation()
                .AddPrometheusExporter())
            .WithTracing(tracing =>
            {
                // Parent-based: a click whose caller sampled its trace is always traced through ingest and into Kafka.
                tracing.AddSource(MeterPrefix + "*")
                    .AddAspNetCoreInstrumentation()
                    .SetSampler(new ParentBasedSampler(new TraceIdRatioBasedSampler(sampleRatio)));
                if (!string.IsNullOrWhiteSpace(otlp))
                {
                    tracing.AddOtlpExporter(o => o.Endpoint = new Uri(otlp));
                }
            });
        if (!string.IsNullOrWhiteSpace(otlp))
        {
            telemetry.WithMetrics(metrics => metrics.AddOtlpExporter(o => o.Endpoint = new Uri(otlp)));
        }
        return builder;
    }

    /// <summary>
    /// Which hops may tell the client's address and scheme (X-Forwarded-For, X-Forwarded-Proto): loopback always, plus
    /// the addresses and networks (CIDR) in <c>Http:TrustedProxies</c>, such as the load balancer's. A header from any
    /// other peer is ignored, so a client cannot pick the address it is rate-limited and recorded under.
    /// </summary>
    private static void TrustProxies(ForwardedHeadersOptions options, IConfiguration configuration)
    {
        options.ForwardedHeaders = ForwardedHeaders.XForwardedFor | ForwardedHeaders.XForwardedProto;
        foreach (var entry in configuration.GetSection("Http:TrustedProxies").Get<string[]>() ?? [])
        {
            if (System.Net.IPNetwork.TryParse(entry, out var network))
            {
                options.KnownIPNetworks.Add(network);
            }
            else if (System.Net.IPAddress.TryParse(entry, out var address))
            {
                options.KnownProxies.Add(address);
            }
            else
            {
                throw new KafkaClicksConfigurationException($"Http:TrustedProxies: '{entry}' is neither an IP address nor a network in CIDR form.");
            }
        }
    }

    /// <summary>
    /// One NpgsqlDataSource for the process, from ConnectionStrings:Postgres. <paramref name="readiness"/>: the role cannot
    /// serve without PostgreSQL, so /readyz fails while it is unreachable (any role of the process asking for it decides).
    /// </summary>
    public static IServiceCollection AddPostgres(this IServiceCollection services, IConfiguration configuration, bool readiness = true)
    {
        if (readiness && !services.Any(d => d.ServiceType == typeof(PostgresReadiness)))
        {
            services.AddSingleton<PostgresReadiness>();
            services.AddHealthChecks().Add(new HealthCheckRegistration(
                "postgres", sp => new PostgresHealthCheck(sp.GetRequiredService<NpgsqlDataSource>()), HealthStatus.Unhealthy, [ReadyTag]));
        }

        if (services.Any(d => d.ServiceType == typeof(NpgsqlDataSource)))
        {
            return services;
        }

        var connectionString = configuration.GetConnectionString("Postgres");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new KafkaClicksConfigurationException("ConnectionStrings:Postgres is not set (a Npgsql connection string).");
        }

        services.AddSingleton(_ => new NpgsqlDataSourceBuilder(WithPoolDefaults(connectionString)).Build());
        return services;
    }

    /// <summary>
    /// Defaults for the process's connections, each unless the connection string sets it itself:
    /// <list type="bullet">
    /// <item><c>Max Auto Prepare</c> 64: statements run often (every query's series, the sink's upsert) are prepared on
    /// each connection after a few runs, so PostgreSQL parses and plans them once instead of on every call (0 turns it
    /// off, as behind PgBouncer in transaction mode).</item>
    /// <item><c>No Reset On Close</c>: a connection going back to the pool is not reset (six statements that PostgreSQL
    /// would run before the next command on it, once per answer or more). No code here leaves session
    /// state behind: nothing sets a session setting, advisory locks are transaction-scoped (the migrator releases its
    /// session lock itself), and the sink's staging table is meant to outlive the transaction.</item>
    /// <item><c>Options</c> <c>-c jit=off</c> (added to options the connection string gives, unless they set jit
    /// themselves): every statement here is short, but PostgreSQL compiles a plan whose estimated cost passes
    /// <c>jit_above_cost</c>, and the estimates of the top-ads and advertiser queries do: measured on the 10,000,000-ad
    /// seed, 220-390 ms of compilation for a 5-16 ms execution (benchmarks/HISTORY.md, scale). Options that set jit
    /// themselves (<c>-c jit=on</c>) are kept as they are.</item>
    /// </list>
    /// </summary>
    public static string WithPoolDefaults(string connectionString)
    {
        var given = new System.Data.Common.DbConnectionStringBuilder { ConnectionString = connectionString }.Keys
            .Cast<string>().Select(k => k.Replace(" ", "", StringComparison.Ordinal)).ToHashSet(StringComparer.OrdinalIgnoreCase);
        var builder = new NpgsqlConnectionStringBuilder(connectionString);
        if (!given.Contains("MaxAutoPrepare"))
        {
            builder.MaxAutoPrepare = 64;
        }

        if (!given.Contains("NoResetOnClose"))
        {
            builder.NoResetOnClose = true;
        }

        if (string.IsNullOrWhiteSpace(builder.Options))
        {
            builder.Options = "-c jit=off";
        }
        else if (builder.Options is { } options && !options.Contains("jit", StringComparison.OrdinalIgnoreCase))
        {
            builder.Options = options + " -c jit=off";
        }

        return builder.ConnectionString;
    }

    /// <summary>One ConnectionMultiplexer for the process, from ConnectionStrings:Redis. Never fails start-up when Redis is down.</summary>
    public static IServiceCollection AddRedis(this IServiceCollection services, IConfiguration configuration)
    {
        if (services.Any(d => d.ServiceType == typeof(IConnectionMultiplexer)))
        {
            return services;
        }

        var connectionString = configuration.GetConnectionString("Redis");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new KafkaClicksConfigurationException("ConnectionStrings:Redis is not set (a StackExchange.Redis configuration string).");
        }

        var options = ConfigurationOptions.Parse(connectionString);
        options.AbortOnConnectFail = false;
        services.AddSingleton<IConnectionMultiplexer>(_ => ConnectionMultiplexer.Connect(options));
        return services;
    }

    /// <summary>
    /// /healthz (alive), /readyz (dependencies reachable: the status, then a line per check that is not healthy saying
    /// why), /metrics (Prometheus).
    /// </summary>
    public static WebApplication MapServiceDefaults(this WebApplication app)
    {
        app.MapHealthChecks("/healthz", new HealthCheckOptions { Predicate = _ => false });
        app.MapHealthChecks("/readyz", new HealthCheckOptions { Predicate = r => r.Tags.Contains(ReadyTag), ResponseWriter = WriteReadiness });
        app.MapPrometheusScrapingEndpoint("/metrics");
        app.MapOpenApi("/openapi/{documentName}.json");
        return app;
    }

    private static Task WriteReadiness(HttpContext context, HealthReport report)
    {
        context.Response.ContentType = "text/plain; charset=utf-8";
        var lines = report.Entries.Where(e => e.Value.Status != HealthStatus.Healthy)
            .Select(e => $"\n{e.Key}: {e.Value.Status}: {e.Value.Description ?? e.Value.Exception?.Message}");
        return context.Response.WriteAsync(report.Status + string.Concat(lines), context.RequestAborted);
    }

    /// <summary>Creates the component's meter with the shared prefix.</summary>
    public static Meter CreateMeter(string component) => new(MeterPrefix + component);

    /// <summary>Marks that the process's readiness includes PostgreSQL's.</summary>
    private sealed class PostgresReadiness;

    /// <summary>Whether PostgreSQL answers a trivial query now.</summary>
    public static async Task<bool> PostgresAnswersAsync(NpgsqlDataSource dataSource, CancellationToken cancellationToken)
    {
        try
        {
            await using var command = dataSource.CreateCommand("SELECT 1");
            await command.ExecuteScalarAsync(cancellationToken);
            return true;
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            return false;
        }
    }

    private sealed class PostgresHealthCheck(NpgsqlDataSource dataSource) : IHealthCheck
    {
        public async Task<HealthCheckResult> CheckHealthAsync(HealthCheckContext context, CancellationToken cancellationToken = default) =>
            await PostgresAnswersAsync(dataSource, cancellationToken) ? HealthCheckResult.Healthy() : HealthCheckResult.Unhealthy("PostgreSQL unreachable");
    }
}

/// <summary>A configuration value is missing or wrong; the message names the key and what is expected.</summary>
public sealed class KafkaClicksConfigurationException : Exception
{
    public KafkaClicksConfigurationException(string message) : base(message) { }

    public KafkaClicksConfigurationException() { }

    public KafkaClicksConfigurationException(string message, Exception inner) : base(message, inner) { }
}
