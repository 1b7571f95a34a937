using System.Buffers.Binary;
using Avro;

namespace KafkaClicks.Contracts;

/// <summary>Constants and helpers of the two wire formats the codecs understand.</summary>
public static class AvroWireFormat
{
    /// <summary>First byte of Avro single-object encoding.</summary>
    public const byte SingleObjectMarker0 = 0xC3;

    /// <summary>Second byte of Avro single-object encoding.</summary>
    public const byte SingleObjectMarker1 = 0x01;

    /// <summary>Bytes before the Avro body in single-object encoding: the marker and the 8-byte fingerprint.</summary>
    public const int SingleObjectHeaderLength = 10;

    /// <summary>First byte of the Confluent Schema Registry wire format.</summary>
    public const byte ConfluentMagicByte = 0x00;

    /// <summary>Bytes before the Avro body in the Confluent wire format: the magic byte and the 4-byte big-endian schema id.</summary>
    public const int ConfluentHeaderLength = 5;

    /// <summary>
    /// The CRC-64-AVRO (Rabin) fingerprint of the schema's Parsing Canonical Form, as used in single-object encoding
    /// (written little-endian after the marker).
    /// </summary>
    public static long Fingerprint(Schema schema)
    {
        ArgumentNullException.ThrowIfNull(schema);
        return SchemaNormalization.ParsingFingerprint64(schema);
    }

    /// <summary>The 10-byte single-object header for a writer schema: <c>C3 01</c> then the fingerprint, little-endian.</summary>
    public static byte[] SingleObjectHeader(Schema schema)
    {
        var header = new byte[SingleObjectHeaderLength];
        header[0] = SingleObjectMarker0;
        header[1] = SingleObjectMarker1;
        BinaryPrimitives.WriteInt64LittleEndian(header.AsSpan(2), Fingerprint(schema));
        return header;
    }
}
