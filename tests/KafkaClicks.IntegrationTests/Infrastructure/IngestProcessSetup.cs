using System.Globalization;
using System.Security.Cryptography;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using Microsoft.Extensions.Options;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// What an ingest role run as its own process (<c>kafkaclicks run --roles ingest</c>) needs: its KAFKACLICKS_*
/// environment (the broker's, the test's database, the shared Redis, a signing key, a spool folder, a free port), and the
/// same signing key in this process to mint its tokens.
/// </summary>
public sealed class IngestProcessSetup
{
    private IngestProcessSetup(Dictionary<string, string> environment, ImpressionTokens tokens, int port, string spool)
    {
        Environment = environment;
        Tokens = tokens;
        BaseAddress = new Uri($"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}");
        Spool = spool;
    }

    public Dictionary<string, string> Environment { get; }

    /// <summary>Mints tokens the process accepts.</summary>
    public ImpressionTokens Tokens { get; }

    public Uri BaseAddress { get; }

    /// <summary>The spool folder (deleted by <see cref="DeleteSpool"/>).</summary>
    public string Spool { get; }

    public static IngestProcessSetup Create(ProcessBroker broker, TestDatabase db)
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var port = FreePorts.Next();
        var spool = Path.Combine(Path.GetTempPath(), "kafkaclicks-ingest-" + Guid.NewGuid().ToString("N"));
        var environment = new Dictionary<string, string>(broker.Environment)
        {
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_ConnectionStrings__Redis"] = RedisServer.ConnectionString,
            ["KAFKACLICKS_Ingest__Tokens__ActiveKeyId"] = "process",
            ["KAFKACLICKS_Ingest__Tokens__Keys__process"] = key,
            ["KAFKACLICKS_Ingest__Spool__Directory"] = spool,
            ["KAFKACLICKS_Urls"] = $"http://127.0.0.1:{port.ToString(CultureInfo.InvariantCulture)}",
        };
        var tokens = new ImpressionTokens(Options.Create(new IngestOptions
        {
            Tokens = new TokenOptions { ActiveKeyId = "process", Keys = new() { ["process"] = key } },
        }), Options.Create(new ImpressionOptions()), TimeProvider.System);
        return new IngestProcessSetup(environment, tokens, port, spool);
    }

    /// <summary>A client of the process that does not follow redirects.</summary>
    public HttpClient Client() =>
        new(new SocketsHttpHandler { AllowAutoRedirect = false }) { BaseAddress = BaseAddress, Timeout = TimeSpan.FromSeconds(10) };

    public void DeleteSpool()
    {
        if (Directory.Exists(Spool))
        {
            Directory.Delete(Spool, recursive: true);
        }
    }
}
