using System.Diagnostics;
using System.Text;
using Confluent.Kafka;

namespace KafkaClicks.Contracts;

/// <summary>W3C trace context (traceparent, tracestate) carried in Kafka record headers.</summary>
public static class TraceContext
{
    /// <summary>Writes the current activity's context into the message headers (nothing when there is no activity).</summary>
    public static void Inject<TKey, TValue>(Message<TKey, TValue> message)
    {
        if (Activity.Current is not { } activity)
        {
            return;
        }

        message.Headers ??= [];
        DistributedContextPropagator.Current.Inject(activity, message.Headers, static (carrier, name, value) =>
        {
            if (carrier is Headers headers && value is not null)
            {
                headers.Remove(name);
                headers.Add(name, Encoding.ASCII.GetBytes(value));
            }
        });
    }

    /// <summary>Reads the parent context from record headers, or default when absent or malformed.</summary>
    public static ActivityContext Extract(Headers? headers)
    {
        if (headers is null)
        {
            return default;
        }

        DistributedContextPropagator.Current.ExtractTraceIdAndState(headers, static (object? carrier, string name, out string? value, out IEnumerable<string>? values) =>
        {
            values = null;
            value = carrier is Headers h && h.TryGetLastBytes(name, out var bytes) ? Encoding.ASCII.GetString(bytes) : null;
        }, out var traceParent, out var traceState);
        return ActivityContext.TryParse(traceParent, traceState, out var context) ? context : default;
    }
}
