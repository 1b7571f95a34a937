using Avro;

namespace KafkaClicks.Contracts.Internal;

/// <summary>
/// Walks an Avro binary body against its writer schema without materialising values, so that hostile input is
/// rejected with a precise reason before Apache.Avro decodes it (its decoder would otherwise allocate whatever
/// length a garbage varint claims, and reports truncation and corruption alike).
/// </summary>
internal static class AvroBodyValidator
{
    /// <summary>Throws <see cref="AvroContractException"/> unless <paramref name="body"/> is exactly one value of <paramref name="schema"/>.</summary>
    public static void Validate(Schema schema, ReadOnlySpan<byte> body)
    {
        var position = 0;
        Skip(schema, body, ref position);
        if (position != body.Length)
        {
            throw Corrupt($"{body.Length - position} byte(s) left after a complete {schema.Fullname} value");
        }
    }

    private static void Skip(Schema schema, ReadOnlySpan<byte> body, ref int position)
    {
        switch (schema.Tag)
        {
            case Schema.Type.Null:
                break;
            case Schema.Type.Boolean:
                var flag = Take(body, ref position, 1)[0];
                if (flag > 1)
                {
                    throw Corrupt($"boolean byte 0x{flag:X2}");
                }

                break;
            case Schema.Type.Int:
                ReadLong(body, ref position, maxBytes: 5);
                break;
            case Schema.Type.Long:
                ReadLong(body, ref position, maxBytes: 10);
                break;
            case Schema.Type.Float:
                Take(body, ref position, 4);
                break;
            case Schema.Type.Double:
                Take(body, ref position, 8);
                break;
            case Schema.Type.Bytes:
            case Schema.Type.String:
                Take(body, ref position, ReadLength(body, ref position));
                break;
            case Schema.Type.Fixed:
                Take(body, ref position, ((FixedSchema)schema).Size);
                break;
            case Schema.Type.Enumeration:
                var symbol = ReadLong(body, ref position, maxBytes: 5);
                if (symbol < 0 || symbol >= ((EnumSchema)schema).Count)
                {
                    throw Corrupt($"enum index {symbol} out of range for {schema.Fullname}");
                }

                break;
            case Schema.Type.Union:
                var union = (UnionSchema)schema;
                var branch = ReadLong(body, ref position, maxBytes: 10);
                if (branch < 0 || branch >= union.Count)
                {
                    throw Corrupt($"union branch {branch} out of range");
                }

                Skip(union[(int)branch], body, ref position);
                break;
            case Schema.Type.Record:
            case Schema.Type.Error:
                foreach (var field in ((RecordSchema)schema).Fields)
                {
                    Skip(field.Schema, body, ref position);
                }

                break;
            case Schema.Type.Array:
                SkipBlocks(((ArraySchema)schema).ItemSchema, isMap: false, body, ref position);
                break;
            case Schema.Type.Map:
                SkipBlocks(((MapSchema)schema).ValueSchema, isMap: true, body, ref position);
                break;
            case Schema.Type.Logical:
                Skip(((LogicalSchema)schema).BaseSchema, body, ref position);
                break;
            default:
                throw Corrupt($"unsupported schema type {schema.Tag}");
        }
    }

    private static void SkipBlocks(Schema itemSchema, bool isMap, ReadOnlySpan<byte> body, ref int position)
    {
        while (true)
        {
            var count = ReadLong(body, ref position, maxBytes: 10);
            if (count == 0)
            {
                return;
            }

            if (count < 0)
            {
                count = -count;
                ReadLength(body, ref position);
            }

            // Every encoded item takes at least one byte except null and empty records; a count larger than
            // the rest of the input is garbage, and bounding it keeps the walk finite.
            if (count > body.Length - position + 1)
            {
                throw Truncated($"block of {count} items in {body.Length - position} byte(s)");
            }

            for (var i = 0L; i < count; i++)
            {
                if (isMap)
                {
                    Take(body, ref position, ReadLength(body, ref position));
                }

                Skip(itemSchema, body, ref position);
            }
        }
    }

    private static int ReadLength(ReadOnlySpan<byte> body, ref int position)
    {
        var length = ReadLong(body, ref position, maxBytes: 10);
        if (length < 0)
        {
            throw Corrupt($"negative length {length}");
        }

        if (length > body.Length - position)
        {
            throw Truncated($"length {length} exceeds the {body.Length - position} remaining byte(s)");
        }

        return (int)length;
    }

    private static long ReadLong(ReadOnlySpan<byte> body, ref int position, int maxBytes)
    {
        ulong raw = 0;
        for (var shift = 0; shift < maxBytes * 7; shift += 7)
        {
            var b = Take(body, ref position, 1)[0];
            raw |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                return (long)(raw >> 1) ^ -(long)(raw & 1);
            }
        }

        throw Corrupt($"variable-length integer longer than {maxBytes} bytes");
    }

    private static ReadOnlySpan<byte> Take(ReadOnlySpan<byte> body, ref int position, int count)
    {
        if (count > body.Length - position)
        {
            throw Truncated($"needed {count} byte(s) at offset {position}, {body.Length - position} left");
        }

        var taken = body.Slice(position, count);
        position += count;
        return taken;
    }

    private static AvroContractException Truncated(string detail) =>
        new(AvroContractErrorReason.Truncated, "Avro body is truncated: " + detail + ".");

    private static AvroContractException Corrupt(string detail) =>
        new(AvroContractErrorReason.Corrupt, "Avro body does not match its writer schema: " + detail + ".");
}
