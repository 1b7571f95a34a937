using System.Collections.Concurrent;
using Confluent.Kafka;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Reconciler;
using KafkaClicks.Sink;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.IntegrationTests.Faults;

/// <summary>
/// A consumer librdkafka declares dead (a fatal error) can do nothing more: the role's loop stops, says why once, and
/// stops its process, whose supervisor starts a new one, instead of retrying the dead consumer forever. The fatal error is
/// a fenced static group member: another instance joined with the same <c>group.instance.id</c>, and the coordinator
/// answers this one's SyncGroup with FENCED_INSTANCE_ID. Only the embedded broker can be told to answer so, so these tests
/// use it in every lane.
/// </summary>
public class FatalConsumerErrorTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const short SyncGroup = 14;

    [Theory]
    [InlineData(Role.Reconciler, typeof(LateClickReconciler), 5106)]
    [InlineData(Role.Sink, typeof(MinuteCountSink), 4008)]
    public async Task A_fenced_consumer_stops_its_role_and_process_instead_of_retrying_forever(Role role, Type loop, int fatalEventId)
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var settings = new Dictionary<string, string?>
        {
            ["Urls"] = "http://127.0.0.1:0",
            ["ConnectionStrings:Postgres"] = db.ConnectionString,
            ["Kafka:BootstrapServers"] = "",
            ["Kafka:Consumer:group.instance.id"] = "kafkaclicks-1",
            ["Logging:LogLevel:Default"] = "Warning",
        };
        await using var broker = await KafkaClicksHost.StartBrokerAsync(KafkaClicksHost.LoadConfiguration(settings), role);
        broker.Embedded!.FailNextRequests(SyncGroup, ErrorCode.FencedInstanceId);
        var logs = new LogCollector();
        await using var app = KafkaClicksHost.Build(role, broker, settings, builder => builder.Logging.AddProvider(logs));
        var stopping = app.Services.GetRequiredService<IHostApplicationLifetime>().ApplicationStopping;
        try
        {
            await app.StartAsync();
        }
        catch (OperationCanceledException) when (stopping.IsCancellationRequested)
        {
            // The host's start gives up once the application is stopping: under load the fenced consumer's stop can
            // come before the last hosted service has started. That stop is what this test expects.
        }

        var service = app.Services.GetServices<IHostedService>().OfType<BackgroundService>().Single(s => s.GetType() == loop);
        var ended = await Task.WhenAny(service.ExecuteTask!, Task.Delay(TimeSpan.FromSeconds(60)));

        Assert.Same(service.ExecuteTask, ended);
        var error = Assert.IsAssignableFrom<KafkaException>(service.ExecuteTask!.Exception!.GetBaseException());
        Assert.True(error.Error.IsFatal, error.Message);
        Assert.True(stopping.IsCancellationRequested, "the host was not asked to stop");
        Assert.Single(logs.Events, id => id == fatalEventId);
    }

    private sealed class LogCollector : ILoggerProvider, ILogger
    {
        public ConcurrentQueue<int> Events { get; } = new();

        public ILogger CreateLogger(string categoryName) => this;

        public IDisposable? BeginScope<TState>(TState state) where TState : notnull => null;

        public bool IsEnabled(LogLevel logLevel) => logLevel >= LogLevel.Warning;

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter) =>
            Events.Enqueue(eventId.Id);

        public void Dispose()
        {
        }
    }
}
