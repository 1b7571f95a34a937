using Avro.Specific;
using Confluent.Kafka;

namespace KafkaClicks.Contracts;

/// <summary>Confluent.Kafka value serializer writing Avro single-object encoding through an <see cref="AvroCodec{T}"/>.</summary>
/// <typeparam name="T">A generated contract record type.</typeparam>
public sealed class AvroKafkaSerializer<T> : ISerializer<T>
    where T : class, ISpecificRecord, new()
{
    private readonly AvroCodec<T> _codec;

    /// <summary>Creates a serializer over <paramref name="codec"/>.</summary>
    public AvroKafkaSerializer(AvroCodec<T> codec)
    {
        ArgumentNullException.ThrowIfNull(codec);
        _codec = codec;
    }

    /// <inheritdoc />
    /// <exception cref="AvroContractException">The record violates its schema.</exception>
    public byte[] Serialize(T data, SerializationContext context) => _codec.Serialize(data);
}
