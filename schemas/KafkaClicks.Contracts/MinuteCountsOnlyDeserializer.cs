using Confluent.Kafka;

namespace KafkaClicks.Contracts;

/// <summary>
/// Reads clicks.minute for a consumer that wants the minute counts only (tools, tests, benchmarks): the aggregator's
/// <see cref="FinalProgress"/> markers that share the topic read as null. The sink reads both.
/// </summary>
public sealed class MinuteCountsOnlyDeserializer : IDeserializer<MinuteCount?>
{
    /// <inheritdoc />
    /// <exception cref="AvroContractException">The bytes are neither a valid minute count nor a progress marker, or the value is null.</exception>
    public MinuteCount? Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) =>
        isNull
            ? throw new AvroContractException(AvroContractErrorReason.NullValue, $"Null MinuteCount value (tombstone) on topic {context.Topic}.")
            : ContractCodecs.FinalProgress.Reads(data) ? null : ContractCodecs.MinuteCount.Deserialize(data);
}
