using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Collections.Frozen;
using Avro;
using Avro.Specific;
using KafkaClicks.Contracts.Internal;

namespace KafkaClicks.Contracts;

/// <summary>
/// Encodes one contract type as Avro single-object encoding and decodes it from single-object encoding or the
/// Confluent Schema Registry wire format. Thread-safe; build one per type and process and share it
/// (<see cref="ContractCodecs"/> holds the default ones).
/// </summary>
/// <typeparam name="T">A record class generated from schemas/*.avsc, e.g. <see cref="ClickEvent"/>.</typeparam>
public sealed class AvroCodec<T>
    where T : class, ISpecificRecord, new()
{
    private readonly SpecificDatumWriter<T> _writer;
    private readonly byte[] _header;
    private readonly FrozenDictionary<long, WriterReader> _byFingerprint;
    private readonly ConcurrentDictionary<int, WriterReader> _bySchemaId = new();
    private readonly Func<int, Schema?>? _writerSchemaById;
    private readonly CurrentSchemaBodyReader<T>? _currentSchemaReader;

    /// <summary>A codec that reads and writes the bundled (current) schema of <typeparamref name="T"/> only.</summary>
    public AvroCodec()
        : this([], null)
    {
    }

    /// <summary>A codec that also reads data written with older versions of the schema, and optionally the Confluent wire format.</summary>
    /// <param name="olderWriterSchemas">
    /// Earlier versions of <typeparamref name="T"/>'s schema whose single-object data must stay readable; each must
    /// resolve against the current schema (fields added since have defaults).
    /// </param>
    /// <param name="writerSchemaById">
    /// Resolves a Confluent schema id to the writer schema, or returns null when the id is unknown; in production
    /// backed by the schema registry client. Called once per id; the answer is cached. Exceptions it throws (e.g. the
    /// registry is unreachable) propagate unchanged so that callers can retry. Null: the Confluent format is rejected
    /// with <see cref="AvroContractErrorReason.UnknownSchemaId"/>.
    /// </param>
    /// <param name="currentSchemaReader">
    /// Optional hand-written reader of bodies written with the current schema, tried before Apache.Avro's generic reader
    /// (which stays the fallback and the source of error reasons); see <see cref="CurrentSchemaBodyReader{T}"/>.
    /// </param>
    /// <exception cref="ArgumentException">An older schema cannot be resolved against the current one.</exception>
    public AvroCodec(IEnumerable<Schema> olderWriterSchemas, Func<int, Schema?>? writerSchemaById, CurrentSchemaBodyReader<T>? currentSchemaReader = null)
    {
        ArgumentNullException.ThrowIfNull(olderWriterSchemas);

        Schema = (RecordSchema)new T().Schema;
        Fingerprint = AvroWireFormat.Fingerprint(Schema);
        _writer = new SpecificDatumWriter<T>(Schema);
        _header = AvroWireFormat.SingleObjectHeader(Schema);
        _writerSchemaById = writerSchemaById;
        _currentSchemaReader = currentSchemaReader;

        var byFingerprint = new Dictionary<long, WriterReader> { [Fingerprint] = new(Schema, new SpecificDatumReader<T>(Schema, Schema)) };
        foreach (var older in olderWriterSchemas)
        {
            ArgumentNullException.ThrowIfNull(older, nameof(olderWriterSchemas));
            try
            {
                byFingerprint.TryAdd(AvroWireFormat.Fingerprint(older), CreateReader(older));
            }
            catch (AvroContractException e)
            {
                throw new ArgumentException(e.Message, nameof(olderWriterSchemas), e);
            }
        }

        _byFingerprint = byFingerprint.ToFrozenDictionary();
    }

    /// <summary>The current (reader and writer) schema of <typeparamref name="T"/>.</summary>
    public RecordSchema Schema { get; }

    /// <summary>CRC-64-AVRO fingerprint of <see cref="Schema"/>, as written in single-object headers.</summary>
    public long Fingerprint { get; }

    /// <summary>Fingerprints of every writer schema this codec reads in single-object encoding.</summary>
    public IReadOnlyCollection<long> KnownFingerprints => _byFingerprint.Keys;

    /// <summary>
    /// Whether <paramref name="data"/> is single-object encoding by a writer schema this codec reads (by its fingerprint
    /// alone, without decoding): how a reader tells apart the record types that share a topic.
    /// </summary>
    public bool Reads(ReadOnlySpan<byte> data) =>
        data.Length >= AvroWireFormat.SingleObjectHeaderLength
        && data[0] == AvroWireFormat.SingleObjectMarker0
        && data[1] == AvroWireFormat.SingleObjectMarker1
        && _byFingerprint.ContainsKey(BinaryPrimitives.ReadInt64LittleEndian(data[2..AvroWireFormat.SingleObjectHeaderLength]));

    /// <summary>Encodes <paramref name="record"/> as Avro single-object encoding with the current schema.</summary>
    /// <exception cref="AvroContractException"><see cref="AvroContractErrorReason.InvalidRecord"/>: the record violates the schema (e.g. a null string).</exception>
    public byte[] Serialize(T record)
    {
        ArgumentNullException.ThrowIfNull(record);

        var buffer = CodecBuffers.RentWriter();
        try
        {
            buffer.Stream.Write(_header);
            _writer.Write(record, buffer.Encoder);
            return buffer.Stream.ToArray();
        }
        catch (Exception e) when (e is AvroException or ArgumentException or InvalidCastException)
        {
            throw new AvroContractException(AvroContractErrorReason.InvalidRecord, $"Cannot encode {typeof(T).Name}: {e.Message}", e);
        }
        finally
        {
            CodecBuffers.Return(buffer);
        }
    }

    /// <summary>
    /// Decodes single-object encoding (<c>C3 01</c> + fingerprint + body) or the Confluent wire format
    /// (<c>00</c> + big-endian schema id + body), resolving the writer schema to the current one.
    /// </summary>
    /// <exception cref="AvroContractException">The bytes are not a valid encoding of <typeparamref name="T"/>; see <see cref="AvroContractException.Reason"/>.</exception>
    public T Deserialize(ReadOnlySpan<byte> data)
    {
        if (data.IsEmpty)
        {
            throw new AvroContractException(AvroContractErrorReason.Truncated, $"Cannot decode {typeof(T).Name} from empty input.");
        }

        return data[0] switch
        {
            AvroWireFormat.SingleObjectMarker0 => DeserializeSingleObject(data),
            AvroWireFormat.ConfluentMagicByte => DeserializeConfluent(data),
            _ => throw UnknownMagic(data),
        };
    }

    private T DeserializeSingleObject(ReadOnlySpan<byte> data)
    {
        if (data.Length < 2)
        {
            throw new AvroContractException(AvroContractErrorReason.Truncated, "Single-object header is truncated.");
        }

        if (data[1] != AvroWireFormat.SingleObjectMarker1)
        {
            throw UnknownMagic(data);
        }

        if (data.Length < AvroWireFormat.SingleObjectHeaderLength)
        {
            throw new AvroContractException(AvroContractErrorReason.Truncated, $"Single-object header is truncated: {data.Length} of {AvroWireFormat.SingleObjectHeaderLength} bytes.");
        }

        var fingerprint = BinaryPrimitives.ReadInt64LittleEndian(data[2..AvroWireFormat.SingleObjectHeaderLength]);
        if (!_byFingerprint.TryGetValue(fingerprint, out var reader))
        {
            throw new AvroContractException(
                AvroContractErrorReason.UnknownFingerprint,
                $"No known {Schema.Fullname} schema has fingerprint 0x{fingerprint:X16}; register the writer's schema version with the codec.");
        }

        var body = data[AvroWireFormat.SingleObjectHeaderLength..];
        if (fingerprint == Fingerprint && _currentSchemaReader?.Invoke(body) is { } fast)
        {
            return fast;
        }

        return Decode(reader, body);
    }

    private T DeserializeConfluent(ReadOnlySpan<byte> data)
    {
        if (data.Length < AvroWireFormat.ConfluentHeaderLength)
        {
            throw new AvroContractException(AvroContractErrorReason.Truncated, $"Confluent header is truncated: {data.Length} of {AvroWireFormat.ConfluentHeaderLength} bytes.");
        }

        var schemaId = BinaryPrimitives.ReadInt32BigEndian(data[1..AvroWireFormat.ConfluentHeaderLength]);
        var reader = _bySchemaId.TryGetValue(schemaId, out var cached) ? cached : ResolveSchemaId(schemaId);
        return Decode(reader, data[AvroWireFormat.ConfluentHeaderLength..]);
    }

    private WriterReader ResolveSchemaId(int schemaId)
    {
        if (_writerSchemaById is null)
        {
            throw new AvroContractException(
                AvroContractErrorReason.UnknownSchemaId,
                $"Confluent-framed {Schema.Fullname} with schema id {schemaId}, but this codec has no schema registry lookup.");
        }

        var writerSchema = _writerSchemaById(schemaId)
            ?? throw new AvroContractException(AvroContractErrorReason.UnknownSchemaId, $"Schema id {schemaId} is unknown to the schema registry.");
        var reader = _byFingerprint.TryGetValue(AvroWireFormat.Fingerprint(writerSchema), out var known) ? known : CreateReader(writerSchema);
        return _bySchemaId.GetOrAdd(schemaId, reader);
    }

    private WriterReader CreateReader(Schema writerSchema)
    {
        try
        {
            return new WriterReader(writerSchema, new SpecificDatumReader<T>(writerSchema, Schema));
        }
        catch (AvroException e)
        {
            throw new AvroContractException(
                AvroContractErrorReason.IncompatibleSchema,
                $"Writer schema {writerSchema.Fullname} (fingerprint 0x{AvroWireFormat.Fingerprint(writerSchema):X16}) cannot be read as {Schema.Fullname}: {e.Message}",
                e);
        }
    }

    private static T Decode(WriterReader reader, ReadOnlySpan<byte> body)
    {
        AvroBodyValidator.Validate(reader.WriterSchema, body);

        var buffer = CodecBuffers.RentReader(body);
        try
        {
            return reader.Reader.Read(null!, buffer.Decoder);
        }
        catch (Exception e) when (e is AvroException or InvalidCastException or ArgumentException or FormatException)
        {
            throw new AvroContractException(AvroContractErrorReason.Corrupt, $"Cannot decode {typeof(T).Name}: {e.Message}", e);
        }
        finally
        {
            CodecBuffers.Return(buffer);
        }
    }

    private static AvroContractException UnknownMagic(ReadOnlySpan<byte> data) =>
        new(
            AvroContractErrorReason.UnknownMagic,
            $"Expected single-object encoding (C3 01) or the Confluent wire format (00); input starts with {Convert.ToHexString(data[..Math.Min(2, data.Length)])}.");

    private sealed record WriterReader(Schema WriterSchema, SpecificDatumReader<T> Reader);
}

/// <summary>
/// Decodes an Avro body written with the current schema of <typeparamref name="T"/>, or returns null when it cannot
/// (malformed input, or a reader that no longer matches the schema), so that the generic reader decides instead.
/// </summary>
public delegate T? CurrentSchemaBodyReader<T>(ReadOnlySpan<byte> body)
    where T : class;
