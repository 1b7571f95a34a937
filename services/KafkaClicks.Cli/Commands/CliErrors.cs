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

    public static async Task<int> RunAsync(Func<Task<int>> action)
    {
        try
        {
            return await action();
        }
        catch (OperationCanceledException)
        {
            return Ok;
        }
        catch (Exception e) when (Describe(e) is { } message)
        {
            await Console.Error.WriteLineAsync($"kafkaclicks: {message}");
            return Failed;
        }
    }

    private static string? Describe(Exception e) => e switch
    {
        KafkaClicksConfigurationException => $"configuration: {e.Message}",
        OptionsValidationException o => $"configuration: {string.Join("; ", o.Failures)}",
        MigrationException => e.Message,
        NpgsqlException => $"PostgreSQL: {e.Message} (is it running? infra/dev.sh up starts a local one)",
        KafkaException => $"Kafka: {e.Message}",
        TopicProvisioningException => $"Kafka: {e.Message}",
        IOException when e.Message.Contains("address already in use", StringComparison.OrdinalIgnoreCase) => $"{e.Message} (use --urls to pick another address)",
        AggregateException { InnerExceptions.Count: 1 } a => Describe(a.InnerException!),
        _ => null,
    };
}
