using Avro.Specific;
using Confluent.Kafka;

namespace KafkaClicks.Contracts;

/// <summary>
/// Confluent.Kafka value deserializer accepting single-object encoding and, when the codec has a schema
/// registry lookup, the Confluent wire format. Failures surface from Consume as a ConsumeException whose
/// inner exception is an <see cref="AvroContractException"/>.
/// </summary>
/// <typeparam name="T">A generated contract record type.</typeparam>
public sealed class AvroKafkaDeserializer<T> : IDeserializer<T>
    where T : class, ISpecificRecord, new()
{
    private readonly AvroCodec<T> _codec;

    /// <summary>Creates a deserializer over <paramref name="codec"/>.</summary>
    public AvroKafkaDeserializer(AvroCodec<T> codec)
    {
        ArgumentNullException.ThrowIfNull(codec);
        _codec = codec;
    }

    /// <inheritdoc />
    /// <exception cref="AvroContractException">
    /// The bytes are not a valid <typeparamref name="T"/>, or the value is null (<see cref="AvroContractErrorReason.NullValue"/>).
    /// </exception>
    public T Deserialize(ReadOnlySpan<byte> data, bool isNull, SerializationContext context) =>
        isNull
            ? throw new AvroContractException(AvroContractErrorReason.NullValue, $"Null {typeof(T).Name} value (tombstone) on topic {context.Topic}.")
            : _codec.Deserialize(data);
}
