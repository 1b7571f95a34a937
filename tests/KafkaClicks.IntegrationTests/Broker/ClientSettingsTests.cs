using KafkaClicks.Broker;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using Microsoft.AspNetCore.Builder;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaClicks.IntegrationTests.Broker;

/// <summary>
/// Kafka:Client holds what a secured cluster asks of every client (security.protocol, sasl.*, ssl.*): each client of every
/// role, of topic provisioning and of every command must be built with it. Here it names a CA file that does not exist, so
/// a client built with it fails at once, librdkafka naming ssl.ca.location; a client built without it would talk to this
/// lane's plaintext broker as if nothing had been configured.
/// </summary>
public sealed class ClientSettingsTests(PostgresServer postgres) : IClassFixture<PostgresServer>, IDisposable
{
    private const string MissingCa = "/nonexistent/kafkaclicks-test-ca.pem";
    private readonly TestKafka _kafka = TestKafka.ForTest();
    private readonly string _state = Path.Combine(Path.GetTempPath(), "kafkaclicks-tests", Guid.NewGuid().ToString("N"));

    /// <summary>A SASL_SSL cluster's settings, in librdkafka's own names.</summary>
    private static readonly Dictionary<string, string?> Secured = new()
    {
        ["Kafka:Client:security.protocol"] = "SASL_SSL",
        ["Kafka:Client:sasl.mechanism"] = "PLAIN",
        ["Kafka:Client:sasl.username"] = "kafkaclicks",
        ["Kafka:Client:sasl.password"] = "not-used",
        ["Kafka:Client:ssl.ca.location"] = MissingCa,
    };

    /// <summary>The same in the property names of Confluent's config classes (on the exactly-once cluster lane these
    /// stopped the aggregator from starting while they were bound onto Streamiz' own config).</summary>
    private static readonly Dictionary<string, string?> SecuredConfluentNames = new()
    {
        ["Kafka:Client:SecurityProtocol"] = "SaslSsl",
        ["Kafka:Client:SaslMechanism"] = "Plain",
        ["Kafka:Client:SaslUsername"] = "kafkaclicks",
        ["Kafka:Client:SaslPassword"] = "not-used",
        ["Kafka:Client:SslCaLocation"] = MissingCa,
    };

    [Theory]
    [InlineData(Role.Ingest, false)]
    [InlineData(Role.Aggregator, false)]
    [InlineData(Role.Sink, false)]
    [InlineData(Role.Reconciler, false)]
    [InlineData(Role.Ingest, true)]
    [InlineData(Role.Aggregator, true)]
    [InlineData(Role.Sink, true)]
    [InlineData(Role.Reconciler, true)]
    public async Task Every_role_builds_its_clients_with_the_client_settings(Role role, bool confluentNames)
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await StartBrokerAsync(db);
        await using var app = KafkaClicksHost.Build(role, broker, Settings(db).Concat(confluentNames ? SecuredConfluentNames : Secured));

        Assert.Contains("ssl.ca.location", await FailureOfAsync(app), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_reconcilers_recount_builds_its_readers_with_the_client_settings()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await StartBrokerAsync(db);
        await using var app = KafkaClicksHost.Build(Role.Reconciler, broker, Settings(db).Concat(Secured));
        var counter = app.Services.GetRequiredService<RawLogCounter>();

        var hour = DateTime.UtcNow.AddHours(-2);
        var error = Assert.ThrowsAny<Exception>(() => counter.Count(hour, hour.AddHours(1), null, null, CancellationToken.None));
        Assert.Contains("ssl.ca.location", Messages(error), StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("topics", "list")]
    [InlineData("topics", "describe", "clicks.raw")]
    [InlineData("lag")]
    [InlineData("replay", "--topic", "clicks.raw", "--to-topic", "clicks.replayed", "--from", "2026-01-01T00:00Z", "--to", "2026-01-01T01:00Z")]
    [InlineData("reconcile", "--from", "2026-01-01T00:00Z", "--to", "2026-01-01T01:00Z", "--dry-run")]
    public async Task Every_command_builds_its_clients_with_the_client_settings(params string[] args)
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await StartBrokerAsync(db);
        var environment = _kafka.Environment(broker.BootstrapServers);
        environment["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString;
        foreach (var (key, value) in Secured)
        {
            environment["KAFKACLICKS_" + key.Replace(":", "__", StringComparison.Ordinal)] = value!;
        }

        var (exitCode, _, error) = await CliRunner.RunAsync(environment, args);

        Assert.Equal(1, exitCode);
        Assert.Contains("ssl.ca.location", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("security.protocol", "SSL", "ssl.ca.location")]
    [InlineData("SecurityProtocol", "Ssl", "SslCaLocation")]
    public async Task Topic_provisioning_builds_its_admin_client_with_the_client_settings(string protocolKey, string protocol, string caKey)
    {
        await using var db = await postgres.CreateDatabaseAsync();
        await using var broker = await StartBrokerAsync(db);
        var overrides = Settings(db);
        overrides["Kafka:BootstrapServers"] = broker.BootstrapServers;
        overrides[$"Kafka:Client:{protocolKey}"] = protocol;
        overrides[$"Kafka:Client:{caKey}"] = MissingCa;

        var error = await Assert.ThrowsAnyAsync<Exception>(() => KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(overrides), Role.Sink));
        Assert.Contains("ssl.ca.location", Messages(error), StringComparison.Ordinal);
    }

    public void Dispose()
    {
        if (Directory.Exists(_state))
        {
            Directory.Delete(_state, recursive: true);
        }
    }

    /// <summary>This lane's broker with every topic, started with the plain settings.</summary>
    private Task<BrokerHandle> StartBrokerAsync(TestDatabase db) =>
        KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(Settings(db)), Role.Ingest | Role.Sink | Role.Reconciler);

    /// <summary>What a host of any role needs besides the Kafka client settings.</summary>
    private Dictionary<string, string?> Settings(TestDatabase db) =>
        new(_kafka.Settings())
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Postgres"] = db.ConnectionString,
            ["ConnectionStrings:Redis"] = RedisServer.ConnectionString,
            ["Ingest:Tokens:ActiveKeyId"] = "t1",
            ["Ingest:Tokens:Keys:t1"] = Convert.ToBase64String(new byte[32]),
            ["Ingest:PublicBaseUrl"] = ProductHost.PublicBaseUrl,
            ["Ingest:AdDirectory:Path"] = Path.Combine(_state, "ad-directory"),
            ["Ingest:Spool:Directory"] = Path.Combine(_state, "spool"),
            ["Aggregator:StateDirectory"] = _state,
            ["Logging:LogLevel:Default"] = "Warning",
        };

    /// <summary>Why the host stopped: its start failed, or a role's loop did (which stops the host, as in production).</summary>
    private static async Task<string> FailureOfAsync(WebApplication app)
    {
        try
        {
            await app.StartAsync();
        }
        catch (OperationCanceledException)
        {
            // A loop that failed while the host was still starting stopped it, which cancels the start: its error says why.
        }
        catch (Exception e)
        {
            return Messages(e);
        }

        var loops = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().ToList();
        var deadline = DateTime.UtcNow.AddSeconds(90);
        while (DateTime.UtcNow < deadline)
        {
            if (loops.FirstOrDefault(l => l.ExecuteTask is { IsFaulted: true }) is { } failed)
            {
                return Messages(failed.ExecuteTask!.Exception!);
            }

            await Task.Delay(200);
        }

        return "no role failed within 90 s";
    }

    private static string Messages(Exception e) =>
        string.Join(" | ", e is AggregateException a ? a.Flatten().InnerExceptions.Select(Messages) : Chain(e).Select(x => x.Message));

    private static IEnumerable<Exception> Chain(Exception? e)
    {
        for (; e is not null; e = e.InnerException)
        {
            yield return e;
        }
    }
}
