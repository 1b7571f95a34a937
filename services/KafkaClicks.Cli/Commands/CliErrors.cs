using System.Runtime.InteropServices;
using Confluent.Kafka;
using KafkaClicks.Broker;
using KafkaClicks.Migrations;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Cli.Commands;

/// <summary>Exit codes and the one place that turns expected failures into a clear message instead of a stack trace.</summary>
public static class CliErrors
{
    public const int Ok = 0;
    public const int Failed = 1;
    public const int Usage = 2;

    /// <summary>Ctrl-C or SIGTERM stopped the work before it finished (128 + SIGINT, as shells report it).</summary>
    public const int Interrupted = 130;

    /// <summary>Reports bad arguments in one line naming the command's help, and returns <see cref="Usage"/>.</summary>
    public static int BadArguments(string command, IEnumerable<string> problems)
    {
        var help = command.Length == 0 ? "kafkaclicks --help" : $"kafkaclicks {command} --help";
        Console.Error.WriteLine($"kafkaclicks: {string.Join("; ", problems.Distinct())} (see '{help}')");
        return Usage;
    }

    /// <summary>Runs work that has an end (reconcile, replay, loadgen...): being stopped before it is an interruption.</summary>
    public static Task<int> RunAsync(Func<Task<int>> action) => RunAsync(action, whenStopped: Interrupted);

    /// <summary>Runs a server (up, run, broker), which Ctrl-C or SIGTERM stops normally.</summary>
    public static Task<int> RunUntilStoppedAsync(Func<Task<int>> action) => RunAsync(action, whenStopped: Ok);

    // Set when Ctrl-C or SIGTERM arrives (System.CommandLine then cancels the command's token): only then is a
    // cancellation a stop; any other (a timeout deep inside a client) is a failure like the rest.
    private static volatile bool _stopRequested;

    private static readonly PosixSignalRegistration[] StopSignals =
    [
        PosixSignalRegistration.Create(PosixSignal.SIGINT, _ => _stopRequested = true),
        PosixSignalRegistration.Create(PosixSignal.SIGTERM, _ => _stopRequested = true),
    ];

    private static async Task<int> RunAsync(Func<Task<int>> action, int whenStopped)
    {
        GC.KeepAlive(StopSignals);
        try
        {
            return await action();
        }
        catch (OperationCanceledException) when (_stopRequested)
        {
            if (whenStopped != Ok)
            {
                await Console.Error.WriteLineAsync("kafkaclicks: interrupted before finishing");
            }

            return whenStopped;
        }
        catch (Exception e)
        {
            // Expected failures get a sentence that says what to do; anything else still gets one line, not a stack
            // trace, unless KAFKACLICKS_DEBUG asks for it.
            var message = Describe(e) ?? $"{e.Message} ({e.GetType().Name}; set KAFKACLICKS_DEBUG=1 to see where)";
            await Console.Error.WriteLineAsync($"kafkaclicks: {message}");
            if (Environment.GetEnvironmentVariable("KAFKACLICKS_DEBUG") is { Length: > 0 })
            {
                await Console.Error.WriteLineAsync(e.ToString());
            }

            return Failed;
        }
    }

    private static string? Describe(Exception e) => e switch
    {
        KafkaClicksConfigurationException => $"configuration: {e.Message}",
        OptionsValidationException o => $"configuration: {string.Join("; ", o.Failures)}",
        MigrationException => e.Message,
        ArgumentException when e.Source == "Npgsql" => $"configuration: ConnectionStrings:Postgres: {e.Message}",
        NpgsqlException => $"PostgreSQL: {e.Message} (is it running? infra/dev.sh up starts a local one)",
        KafkaException => $"Kafka: {e.Message}",
        TopicProvisioningException => $"Kafka: {e.Message}",
        IOException when e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) => $"{e.Message} (use --urls to pick another address)",
        AggregateException { InnerExceptions.Count: 1 } a => Describe(a.InnerException!),
        _ => null,
    };
}
