using Confluent.Kafka;
using KafkaClicks.Contracts;
using Streamiz.Kafka.Net.SerDes;

namespace KafkaClicks.Topology;

/// <summary>Streamiz SerDes over the shared Avro codec (single-object encoding out, both wire formats in).</summary>
public sealed class AvroSerDes<T> : AbstractSerDes<T>
    where T : class, Avro.Specific.ISpecificRecord, new()
{
    private readonly AvroCodec<T> _codec;

    public AvroSerDes(AvroCodec<T> codec) => _codec = codec;

    public override byte[] Serialize(T data, SerializationContext context) => _codec.Serialize(data);

    public override T Deserialize(byte[] data, SerializationContext context) => _codec.Deserialize(data);
}
