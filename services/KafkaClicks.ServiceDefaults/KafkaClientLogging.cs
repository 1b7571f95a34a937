using Confluent.Kafka;
using Microsoft.Extensions.Logging;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// librdkafka's own log lines (connection failures, broker state changes) through a .NET logger, formatted like every
/// other line, instead of raw on stderr. A null logger leaves librdkafka's default (stderr), for callers that have none.
/// </summary>
public static partial class KafkaClientLogging
{
    /// <summary>The log handler that writes to <paramref name="logger"/>, for builders that take one (Confluent's and the broker's).</summary>
    public static Action<IClient, LogMessage> Handler(ILogger logger) => (_, message) =>
    {
        var level = LevelOf(message.Level);
        if (logger.IsEnabled(level))
        {
            Librdkafka(logger, level, message.Name, message.Facility, message.Message);
        }
    };

    public static ProducerBuilder<TKey, TValue> LogTo<TKey, TValue>(this ProducerBuilder<TKey, TValue> builder, ILogger? logger) =>
        logger is null ? builder : builder.SetLogHandler(Handler(logger));

    public static ConsumerBuilder<TKey, TValue> LogTo<TKey, TValue>(this ConsumerBuilder<TKey, TValue> builder, ILogger? logger) =>
        logger is null ? builder : builder.SetLogHandler(Handler(logger));

    public static AdminClientBuilder LogTo(this AdminClientBuilder builder, ILogger? logger) =>
        logger is null ? builder : builder.SetLogHandler(Handler(logger));

    private static LogLevel LevelOf(SyslogLevel level) => level switch
    {
        SyslogLevel.Emergency or SyslogLevel.Alert or SyslogLevel.Critical => LogLevel.Critical,
        SyslogLevel.Error => LogLevel.Error,
        SyslogLevel.Warning => LogLevel.Warning,
        SyslogLevel.Notice or SyslogLevel.Info => LogLevel.Information,
        _ => LogLevel.Debug,
    };

    [LoggerMessage(EventId = 9201, Message = "librdkafka {Client} {Facility}: {Message}")]
    private static partial void Librdkafka(ILogger logger, LogLevel level, string client, string facility, string message);
}
