using KafkaClicks.Aggregator;
using KafkaClicks.Broker;
using KafkaClicks.Ingest;
using KafkaClicks.Migrations;
using KafkaClicks.Query;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using KafkaClicks.Sink;
using KafkaClicks.Topology;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Console;
using Npgsql;

namespace KafkaClicks.Cli.Hosting;

/// <summary>Composes a process from roles: each role registers itself, the host only wires them together.</summary>
public static class KafkaClicksHost
{
    /// <summary>Environment variable naming an extra JSON configuration file (infra/dev.sh points it at the local dev secrets).</summary>
    public const string ConfigFileVariable = "KAFKACLICKS_CONFIG";

    /// <summary>Configuration as every command sees it: appsettings.json, the file in KAFKACLICKS_CONFIG, KAFKACLICKS_* variables, overrides.</summary>
    public static IConfigurationRoot LoadConfiguration(IEnumerable<KeyValuePair<string, string?>>? overrides = null)
    {
        var builder = new ConfigurationBuilder()
            .SetBasePath(AppContext.BaseDirectory)
            .AddJsonFile("appsettings.json", optional: true);
        AddSources(builder, overrides);
        try
        {
            return builder.Build();
        }
        catch (InvalidDataException e)
        {
            throw new KafkaClicksConfigurationException($"{ConfigFileVariable}: {e.Message} {e.InnerException?.Message}".TrimEnd());
        }
    }

    /// <summary>Builds the web application hosting <paramref name="roles"/> against <paramref name="broker"/>.</summary>
    public static WebApplication Build(Role roles, BrokerHandle broker, IEnumerable<KeyValuePair<string, string?>>? overrides = null,
        Action<WebApplicationBuilder>? configure = null)
    {
        var builder = WebApplication.CreateSlimBuilder(new WebApplicationOptions { ContentRootPath = AppContext.BaseDirectory });
        builder.Configuration.AddJsonFile("appsettings.json", optional: true);
        AddSources(builder.Configuration, overrides);
        builder.Configuration.AddInMemoryCollection([new("Kafka:BootstrapServers", broker.BootstrapServers)]);
        AddConsoleLogging(builder.Logging, toStandardError: false);
        builder.AddServiceDefaults();
        builder.Services.AddKafka();
        builder.Services.AddSingleton(broker);
        builder.Services.AddHostedService<TopicProvisioningWatch>();
        if (roles.HasFlag(Role.Ingest))
        {
            builder.AddIngest();
        }

        if (roles.HasFlag(Role.Aggregator))
        {
            builder.AddAggregator();
        }

        if (roles.HasFlag(Role.Sink))
        {
            builder.AddSink();
        }

        if (roles.HasFlag(Role.Query))
        {
            builder.AddQuery();
        }

        if (roles.HasFlag(Role.Reconciler))
        {
            builder.AddReconciler();
        }

        configure?.Invoke(builder);
        var app = builder.Build();
        app.UseForwardedHeaders();
        app.UseExceptionHandler();
        app.UseStatusCodePages();
        if (roles.HasFlag(Role.Query))
        {
            // Here rather than where WebApplication would put them (before everything above), so that the API-key
            // scheme sees the forwarded client address and its errors reach the exception handler.
            app.UseAuthentication();
            app.UseAuthorization();
        }

        app.MapServiceDefaults();
        if (roles.HasFlag(Role.Ingest))
        {
            app.MapIngest();
        }

        if (roles.HasFlag(Role.Query))
        {
            app.MapQuery();
        }

        return app;
    }

    /// <summary>
    /// Log lines outside the web host (migrations, the broker's and the tools' Kafka clients), formatted as the host's;
    /// <paramref name="toStandardError"/> for commands whose standard output is their result (JSON, tables).
    /// </summary>
    public static ILoggerFactory CreateLoggerFactory(bool toStandardError) =>
        LoggerFactory.Create(logging => AddConsoleLogging(logging, toStandardError));

    /// <summary>
    /// Starts the broker the configuration names (or the embedded one) with every declared topic, for a process that
    /// runs <paramref name="roles"/> (an exactly-once aggregator needs transactions the embedded broker cannot give).
    /// librdkafka's log lines of the broker's clients go to <paramref name="loggerFactory"/>, which must outlive the broker.
    /// </summary>
    public static async Task<BrokerHandle> StartBrokerAsync(IConfiguration configuration, Role roles, int? embeddedPort = null,
        ILoggerFactory? loggerFactory = null, CancellationToken cancellationToken = default)
    {
        var kafka = configuration.GetSection(KafkaOptions.Section).Get<KafkaOptions>() ?? new KafkaOptions();
        var admin = new KafkaClientFactory(configuration).ClientSettings();
        var exactlyOnce = roles.HasFlag(Role.Aggregator) && AggregatorGuaranteeOf(configuration) == AggregatorGuarantee.ExactlyOnce;
        try
        {
            return await KafkaBroker.StartAsync(kafka.BootstrapServers, TopicCatalog.All(kafka, configuration),
                new KafkaBrokerOptions
                {
                    AdminClientConfig = admin, EmbeddedPort = embeddedPort, RequiresTransactions = exactlyOnce, Names = kafka.Names,
                    LogHandler = loggerFactory is null ? null : KafkaClientLogging.Handler(loggerFactory.CreateLogger<BrokerHandle>()),
                }, cancellationToken);
        }
        catch (NotSupportedException e) when (exactlyOnce)
        {
            throw new KafkaClicksConfigurationException(
                $"Aggregator:Guarantee is ExactlyOnce. {e.Message} Set Kafka:BootstrapServers to a Kafka cluster, or Aggregator:Guarantee to AtLeastOnce.", e);
        }
    }

    private static AggregatorGuarantee AggregatorGuaranteeOf(IConfiguration configuration)
    {
        try
        {
            return configuration.GetSection(AggregationOptions.Section).Get<AggregationOptions>()?.Guarantee ?? AggregatorGuarantee.AtLeastOnce;
        }
        catch (InvalidOperationException e)
        {
            throw new KafkaClicksConfigurationException($"Aggregator: {e.Message}", e);
        }
    }

    /// <summary>Applies the SQL migrations to ConnectionStrings:Postgres.</summary>
    public static async Task<MigrationResult> MigrateAsync(IConfiguration configuration, ILoggerFactory loggerFactory, CancellationToken cancellationToken)
    {
        var connectionString = configuration.GetConnectionString("Postgres");
        if (string.IsNullOrWhiteSpace(connectionString))
        {
            throw new KafkaClicksConfigurationException("ConnectionStrings:Postgres is not set (a Npgsql connection string).");
        }

        await using var dataSource = NpgsqlDataSource.Create(connectionString);
        return await new DatabaseMigrator(dataSource, loggerFactory.CreateLogger<DatabaseMigrator>()).MigrateAsync(cancellationToken);
    }

    private static void AddConsoleLogging(ILoggingBuilder logging, bool toStandardError)
    {
        logging.AddSimpleConsole(o => { o.SingleLine = true; o.TimestampFormat = "HH:mm:ss "; });
        if (toStandardError)
        {
            logging.Services.Configure<ConsoleLoggerOptions>(o => o.LogToStandardErrorThreshold = LogLevel.Trace);
        }
    }

    private static void AddSources(IConfigurationBuilder builder, IEnumerable<KeyValuePair<string, string?>>? overrides)
    {
        if (Environment.GetEnvironmentVariable(ConfigFileVariable) is { Length: > 0 } file)
        {
            var path = Path.GetFullPath(file);
            if (!File.Exists(path))
            {
                throw new KafkaClicksConfigurationException($"{ConfigFileVariable} names {path}, which does not exist.");
            }

            builder.AddJsonFile(path, optional: false);
        }

        builder.AddEnvironmentVariables("KAFKACLICKS_");
        if (overrides is not null)
        {
            builder.AddInMemoryCollection(overrides);
        }
    }
}
