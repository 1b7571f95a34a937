using System.Buffers.Binary;
using Confluent.Kafka;
using Streamiz.Kafka.Net.SerDes;

namespace KafkaClicks.Topology;

/// <summary>What the impression store remembers of a counted click: which ad, salt and minute it was counted in.</summary>
public sealed record SeenImpression(long AdId, int Salt, long WindowStart);

/// <summary>Fixed 20-byte encoding of <see cref="SeenImpression"/> for the RocksDB store and its changelog.</summary>
public sealed class SeenImpressionSerDes : AbstractSerDes<SeenImpression>
{
    private const int Length = 20;

    public override byte[] Serialize(SeenImpression data, SerializationContext context) => data is null ? null! : Encode(data);

    public override SeenImpression Deserialize(byte[] data, SerializationContext context) => Decode(data)!;

    public static byte[] Encode(SeenImpression data)
    {
        var bytes = new byte[Length];
        BinaryPrimitives.WriteInt64BigEndian(bytes, data.AdId);
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(8), data.Salt);
        BinaryPrimitives.WriteInt64BigEndian(bytes.AsSpan(12), data.WindowStart);
        return bytes;
    }

    /// <summary>The impression <paramref name="data"/> encodes, or null for null or for bytes of another length (an older format).</summary>
    public static SeenImpression? Decode(byte[]? data) =>
        data is not { Length: Length }
            ? null
            : new SeenImpression(
                BinaryPrimitives.ReadInt64BigEndian(data),
                BinaryPrimitives.ReadInt32BigEndian(data.AsSpan(8)),
                BinaryPrimitives.ReadInt64BigEndian(data.AsSpan(12)));
}
