using KafkaClicks.Broker;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.Cli.Hosting;

/// <summary>
/// Says when a process started while its Kafka cluster did not answer, and when the cluster's topics were declared after
/// all, or why that failed (the roles then report their own errors); and topics left with another partition count than
/// declared.
/// </summary>
internal sealed partial class TopicProvisioningWatch(BrokerHandle broker, ILogger<TopicProvisioningWatch> logger) : BackgroundService
{
    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        if (broker.UnreachableAtStart is { } reason)
        {
            LogUnreachable(broker.BootstrapServers, reason);
            try
            {
                await broker.Provisioned.WaitAsync(stoppingToken);
                LogProvisioned(broker.BootstrapServers);
            }
            catch (Exception e) when (e is not OperationCanceledException)
            {
                LogFailed(broker.BootstrapServers, e.Message);
                return;
            }
        }

        if (broker.PartitionCountsDiffer is { } differ)
        {
            LogPartitionCountsDiffer(differ);
        }
    }

    [LoggerMessage(EventId = 9101, Level = LogLevel.Warning,
        Message = "Kafka cluster {BootstrapServers} did not answer at start ({Reason}); running anyway (ingest spools clicks) and declaring the topics once it answers")]
    private partial void LogUnreachable(string bootstrapServers, string reason);

    [LoggerMessage(EventId = 9102, Level = LogLevel.Information, Message = "Kafka cluster {BootstrapServers} answers: every topic is declared")]
    private partial void LogProvisioned(string bootstrapServers);

    [LoggerMessage(EventId = 9104, Level = LogLevel.Error, Message = "{Reason}")]
    private partial void LogPartitionCountsDiffer(string reason);

    [LoggerMessage(EventId = 9103, Level = LogLevel.Error, Message = "Declaring the topics on Kafka cluster {BootstrapServers} failed: {Error}")]
    private partial void LogFailed(string bootstrapServers, string error);
}
