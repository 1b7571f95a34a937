using System.Buffers.Binary;
using System.Text;
using Avro;
using Avro.Generic;
using Avro.IO;
using Confluent.Kafka;
using KafkaClicks.Contracts;

namespace KafkaClicks.UnitTests.Contracts;

public class AvroCodecTests
{
    // ClickEvent as it was before dedupeChecked and ingestInstance were added.
    private const string ClickEventV1 = """
        {"type":"record","name":"ClickEvent","namespace":"KafkaClicks.Contracts","fields":[
          {"name":"impressionId","type":"string"},
          {"name":"adId","type":"long"},
          {"name":"advertiserId","type":"long"},
          {"name":"salt","type":"int"},
          {"name":"clickedAt","type":{"type":"long","logicalType":"timestamp-millis"}},
          {"name":"impressionAt","type":{"type":"long","logicalType":"timestamp-millis"}}]}
        """;

    private const string ClickEventCanonicalForm =
        """{"name":"KafkaClicks.Contracts.ClickEvent","type":"record","fields":[{"name":"impressionId","type":"string"},{"name":"adId","type":"long"},{"name":"advertiserId","type":"long"},{"name":"salt","type":"int"},{"name":"clickedAt","type":"long"},{"name":"impressionAt","type":"long"},{"name":"dedupeChecked","type":"boolean"},{"name":"ingestInstance","type":"string"},{"name":"clientNetwork","type":"string"},{"name":"userAgentHash","type":"string"},{"name":"referrerHost","type":"string"}]}""";

    private static readonly DateTime _clickedAt = new DateTime(2025, 3, 14, 15, 9, 26, 535, DateTimeKind.Utc).AddTicks(6_789);

    [Fact]
    public void ClickEventRoundTripsWithMillisecondUtcTimestamps()
    {
        var click = SampleClick();

        var decoded = ContractCodecs.ClickEvent.Deserialize(ContractCodecs.ClickEvent.Serialize(click));

        Assert.Equal(click.ImpressionId, decoded.ImpressionId);
        Assert.Equal(click.AdId, decoded.AdId);
        Assert.Equal(click.AdvertiserId, decoded.AdvertiserId);
        Assert.Equal(click.Salt, decoded.Salt);
        Assert.False(decoded.DedupeChecked);
        Assert.Equal("ingest-2", decoded.IngestInstance);
        Assert.Equal(new DateTime(2025, 3, 14, 15, 9, 26, 535, DateTimeKind.Utc), decoded.ClickedAt);
        Assert.Equal(DateTimeKind.Utc, decoded.ClickedAt.Kind);
        Assert.Equal(click.ImpressionAt, decoded.ImpressionAt);
        Assert.Equal(DateTimeKind.Utc, decoded.ImpressionAt.Kind);
    }

    [Fact]
    public void MinuteCountRoundTrips()
    {
        var count = new MinuteCount
        {
            AdId = 9_000_000_001,
            Salt = 7,
            WindowStart = new DateTime(2025, 3, 14, 15, 9, 0, DateTimeKind.Utc),
            Clicks = 12_345,
            Final = true,
            EmittedAt = new DateTime(2025, 3, 14, 15, 10, 30, 250, DateTimeKind.Utc),
            EarliestNewClickAt = new DateTime(2025, 3, 14, 15, 9, 41, 125, DateTimeKind.Utc),
        };

        var decoded = ContractCodecs.MinuteCount.Deserialize(ContractCodecs.MinuteCount.Serialize(count));

        Assert.Equal(count.AdId, decoded.AdId);
        Assert.Equal(count.Salt, decoded.Salt);
        Assert.Equal(count.WindowStart, decoded.WindowStart);
        Assert.Equal(DateTimeKind.Utc, decoded.WindowStart.Kind);
        Assert.Equal(count.Clicks, decoded.Clicks);
        Assert.True(decoded.Final);
        Assert.Equal(count.EmittedAt, decoded.EmittedAt);
        Assert.Equal(count.EarliestNewClickAt, decoded.EarliestNewClickAt?.ToUniversalTime());
    }

    [Fact]
    public void ClicksWrittenWithThePreviousSchemaStillDecodeWithEmptyDisputeFields()
    {
        // What ingest instances of the previous version wrote to clicks.raw (and their spools) during a rolling upgrade
        // must still be counted and recounted.
        var v1 = Assert.Single(ContractSchemas.PreviousVersions(ContractSchemas.ClickEvent.Fullname));
        Assert.DoesNotContain(v1.Fields, f => f.Name == "clientNetwork");
        var record = OldClick(v1, "imp-v1", adId: 42, advertiserId: 7, salt: 2, _clickedAt.AddSeconds(-3));
        record.Add("dedupeChecked", false);
        record.Add("ingestInstance", "ingest-1");
        var bytes = AvroWireFormat.SingleObjectHeader(v1).Concat(Encode(v1, record)).ToArray();

        Assert.False(ClickEventReader.TryRead(bytes, out _));
        var decoded = ContractCodecs.ClickEvent.Deserialize(bytes);

        Assert.Equal(("imp-v1", 42L, 7L, 2, false, "ingest-1"),
            (decoded.ImpressionId, decoded.AdId, decoded.AdvertiserId, decoded.Salt, decoded.DedupeChecked, decoded.IngestInstance));
        Assert.Equal((string.Empty, string.Empty, string.Empty), (decoded.ClientNetwork, decoded.UserAgentHash, decoded.ReferrerHost));
    }

    [Fact]
    public void MinuteCountsWrittenWithThePreviousSchemaStillDecode()
    {
        // What an aggregator of the previous version left on clicks.minute must still reach the database after an upgrade.
        var v1 = Assert.Single(ContractSchemas.PreviousVersions(ContractSchemas.MinuteCount.Fullname));
        Assert.DoesNotContain(v1.Fields, f => f.Name == "earliestNewClickAt");
        var record = new GenericRecord(v1);
        record.Add("adId", 42L);
        record.Add("salt", 3);
        record.Add("windowStart", new DateTime(2025, 3, 14, 15, 9, 0, DateTimeKind.Utc));
        record.Add("clicks", 17L);
        record.Add("final", true);
        record.Add("emittedAt", new DateTime(2025, 3, 14, 15, 10, 31, DateTimeKind.Utc));
        var bytes = AvroWireFormat.SingleObjectHeader(v1).Concat(Encode(v1, record)).ToArray();

        var decoded = ContractCodecs.MinuteCount.Deserialize(bytes);

        Assert.Equal((42L, 3, 17L, true), (decoded.AdId, decoded.Salt, decoded.Clicks, decoded.Final));
        Assert.Null(decoded.EarliestNewClickAt);
        Assert.NotEqual(AvroWireFormat.Fingerprint(v1), ContractCodecs.MinuteCount.Fingerprint);
    }

    [Fact]
    public void SerializeWritesTheSingleObjectHeaderWithTheRabinFingerprintOfTheCanonicalForm()
    {
        var bytes = ContractCodecs.ClickEvent.Serialize(SampleClick());

        Assert.Equal(ClickEventCanonicalForm, SchemaNormalization.ToParsingForm(ContractSchemas.ClickEvent));
        var expectedFingerprint = Crc64Avro(Encoding.UTF8.GetBytes(ClickEventCanonicalForm));
        Assert.Equal(0xC3, bytes[0]);
        Assert.Equal(0x01, bytes[1]);
        Assert.Equal(expectedFingerprint, BinaryPrimitives.ReadInt64LittleEndian(bytes.AsSpan(2, 8)));
        Assert.Equal(expectedFingerprint, ContractCodecs.ClickEvent.Fingerprint);
        Assert.Equal(AvroWireFormat.SingleObjectHeader(ContractSchemas.ClickEvent), bytes[..10]);
        Assert.Equal(BodyOf(SampleClick()), bytes[10..]);
    }

    [Fact]
    public void ANewerReaderReadsDataWrittenWithAnOlderSchemaAndFillsDefaults()
    {
        var v1 = Schema.Parse(ClickEventV1);
        var record = OldClick((RecordSchema)v1, "imp-old", adId: 42, advertiserId: 7, salt: 0, _clickedAt.AddSeconds(-3));
        var bytes = AvroWireFormat.SingleObjectHeader(v1).Concat(Encode(v1, record)).ToArray();
        var codec = new AvroCodec<ClickEvent>([v1], writerSchemaById: null);

        var decoded = codec.Deserialize(bytes);

        Assert.Equal("imp-old", decoded.ImpressionId);
        Assert.Equal(42L, decoded.AdId);
        Assert.True(decoded.DedupeChecked);
        Assert.Equal(string.Empty, decoded.IngestInstance);
        Assert.Contains(AvroWireFormat.Fingerprint(v1), codec.KnownFingerprints);
        Assert.Equal(AvroContractErrorReason.UnknownFingerprint, Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(bytes)).Reason);
    }

    [Fact]
    public void AnOlderSchemaThatCannotBeResolvedIsRejectedAtConstruction()
    {
        var withoutDefault = Schema.Parse("""
            {"type":"record","name":"ClickEvent","namespace":"KafkaClicks.Contracts","fields":[{"name":"impressionId","type":"string"}]}
            """);

        var error = Assert.Throws<ArgumentException>(() => new AvroCodec<ClickEvent>([withoutDefault], writerSchemaById: null));

        Assert.Equal(AvroContractErrorReason.IncompatibleSchema, Assert.IsType<AvroContractException>(error.InnerException).Reason);
    }

    [Fact]
    public void ConfluentWireFormatIsDecodedWithTheWriterSchemaFromTheLookup()
    {
        var v1 = Schema.Parse(ClickEventV1);
        var lookups = 0;
        var codec = new AvroCodec<ClickEvent>([], id =>
        {
            Interlocked.Increment(ref lookups);
            return id switch { 41 => v1, 42 => ContractSchemas.ClickEvent, _ => null };
        });
        var current = Confluent(42, BodyOf(SampleClick()));
        var record = OldClick((RecordSchema)v1, "imp-v1", adId: 5, advertiserId: 6, salt: 3, _clickedAt);
        var older = Confluent(41, Encode(v1, record));

        var first = codec.Deserialize(current);
        var second = codec.Deserialize(current);
        var fromV1 = codec.Deserialize(older);

        Assert.Equal("imp-1", first.ImpressionId);
        Assert.Equal("ingest-2", second.IngestInstance);
        Assert.Equal("imp-v1", fromV1.ImpressionId);
        Assert.Equal(3, fromV1.Salt);
        Assert.True(fromV1.DedupeChecked);
        Assert.Equal(2, lookups);
        Assert.Equal(AvroContractErrorReason.UnknownSchemaId, Assert.Throws<AvroContractException>(() => codec.Deserialize(Confluent(7, BodyOf(SampleClick())))).Reason);
        Assert.Equal(AvroContractErrorReason.UnknownSchemaId, Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(current)).Reason);
    }

    [Theory]
    [InlineData(new byte[] { }, AvroContractErrorReason.Truncated)]
    [InlineData(new byte[] { 0xC3 }, AvroContractErrorReason.Truncated)]
    [InlineData(new byte[] { 0xC3, 0x01, 0x01, 0x02 }, AvroContractErrorReason.Truncated)]
    [InlineData(new byte[] { 0x00, 0x00, 0x01 }, AvroContractErrorReason.Truncated)]
    [InlineData(new byte[] { 0xC3, 0x02, 1, 2, 3, 4, 5, 6, 7, 8, 9 }, AvroContractErrorReason.UnknownMagic)]
    [InlineData(new byte[] { 0x7B, 0x22, 0x61, 0x64, 0x49, 0x64, 0x22, 0x3A, 0x31, 0x7D }, AvroContractErrorReason.UnknownMagic)]
    [InlineData(new byte[] { 0xFF, 0xFF, 0xFF, 0xFF }, AvroContractErrorReason.UnknownMagic)]
    public void GarbageAndShortInputFailWithASpecificReason(byte[] data, AvroContractErrorReason reason)
    {
        var error = Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(data));

        Assert.Equal(reason, error.Reason);
    }

    [Fact]
    public void ATruncatedBodyFailsAsTruncatedAtEveryCut()
    {
        var bytes = ContractCodecs.ClickEvent.Serialize(SampleClick());

        for (var length = AvroWireFormat.SingleObjectHeaderLength; length < bytes.Length; length++)
        {
            var error = Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(bytes.AsSpan(0, length)));
            Assert.Equal(AvroContractErrorReason.Truncated, error.Reason);
        }
    }

    [Fact]
    public void AnUnknownFingerprintFailsAsUnknownFingerprint()
    {
        var bytes = ContractCodecs.ClickEvent.Serialize(SampleClick());
        bytes[5] ^= 0xFF;

        var error = Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(bytes));

        Assert.Equal(AvroContractErrorReason.UnknownFingerprint, error.Reason);
    }

    [Fact]
    public void ABodyThatDoesNotMatchItsSchemaFailsAsCorrupt()
    {
        // The body ends with final (0x01), emittedAt (the epoch: one byte) and earliestNewClickAt (null: one byte).
        var valid = ContractCodecs.MinuteCount.Serialize(new MinuteCount { Final = true, EmittedAt = DateTime.UnixEpoch });
        var trailing = valid.Append((byte)0).ToArray();
        var badBoolean = (byte[])valid.Clone();
        Assert.Equal(0x01, badBoolean[^3]);
        badBoolean[^3] = 0x02;
        var minuteCountHeader = AvroWireFormat.SingleObjectHeader(ContractSchemas.MinuteCount);
        var overlongVarint = minuteCountHeader.Concat(Enumerable.Repeat((byte)0xFF, 11)).ToArray();
        var clickHeader = AvroWireFormat.SingleObjectHeader(ContractSchemas.ClickEvent);
        var negativeStringLength = clickHeader.Concat(new byte[] { 0x01 }).ToArray();

        Assert.Equal(AvroContractErrorReason.Corrupt, Assert.Throws<AvroContractException>(() => ContractCodecs.MinuteCount.Deserialize(trailing)).Reason);
        Assert.Equal(AvroContractErrorReason.Corrupt, Assert.Throws<AvroContractException>(() => ContractCodecs.MinuteCount.Deserialize(badBoolean)).Reason);
        Assert.Equal(AvroContractErrorReason.Corrupt, Assert.Throws<AvroContractException>(() => ContractCodecs.MinuteCount.Deserialize(overlongVarint)).Reason);
        Assert.Equal(AvroContractErrorReason.Corrupt, Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(negativeStringLength)).Reason);
    }

    [Fact]
    public void RandomBodiesBehindAValidHeaderOnlyEverRaiseContractExceptions()
    {
        var random = new Random(20250314);
        var header = AvroWireFormat.SingleObjectHeader(ContractSchemas.ClickEvent);
        var body = new byte[64];

        for (var i = 0; i < 20_000; i++)
        {
            random.NextBytes(body);
            var data = header.Concat(body.Take(random.Next(body.Length))).ToArray();
            try
            {
                ContractCodecs.ClickEvent.Deserialize(data);
            }
            catch (AvroContractException)
            {
                // Expected for almost every input; any other exception type fails the test.
            }
        }
    }

    [Fact]
    public void ARecordThatViolatesTheSchemaFailsAsInvalidRecord()
    {
        var click = SampleClick();
        click.ImpressionId = null!;

        var error = Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Serialize(click));

        Assert.Equal(AvroContractErrorReason.InvalidRecord, error.Reason);
    }

    [Fact]
    public void KafkaAdaptersRoundTripAndRejectTombstones()
    {
        var serializer = new AvroKafkaSerializer<ClickEvent>(ContractCodecs.ClickEvent);
        var deserializer = new AvroKafkaDeserializer<ClickEvent>(ContractCodecs.ClickEvent);
        var context = new SerializationContext(MessageComponentType.Value, "clicks.raw");

        var bytes = serializer.Serialize(SampleClick(), context);
        var decoded = deserializer.Deserialize(bytes, isNull: false, context);
        var tombstone = Assert.Throws<AvroContractException>(() => deserializer.Deserialize(ReadOnlySpan<byte>.Empty, isNull: true, context));

        Assert.Equal("imp-1", decoded.ImpressionId);
        Assert.Equal(AvroContractErrorReason.NullValue, tombstone.Reason);
    }

    [Fact]
    public async Task CodecIsThreadSafe()
    {
        var tasks = Enumerable.Range(0, 8).Select(worker => Task.Run(() =>
        {
            for (var i = 0; i < 2_000; i++)
            {
                var click = SampleClick();
                click.AdId = (worker * 100_000) + i;
                click.ImpressionId = $"imp-{worker}-{i}";
                var decoded = ContractCodecs.ClickEvent.Deserialize(ContractCodecs.ClickEvent.Serialize(click));
                Assert.Equal(click.AdId, decoded.AdId);
                Assert.Equal(click.ImpressionId, decoded.ImpressionId);
            }
        }));

        await Task.WhenAll(tasks);
    }

    private static ClickEvent SampleClick() => new()
    {
        ImpressionId = "imp-1",
        AdId = 1_234_567_890_123,
        AdvertiserId = 77,
        Salt = 5,
        ClickedAt = _clickedAt,
        ImpressionAt = new DateTime(2025, 3, 14, 15, 9, 20, 1, DateTimeKind.Utc),
        DedupeChecked = false,
        IngestInstance = "ingest-2",
    };

    private static byte[] BodyOf(ClickEvent click) =>
        ContractCodecs.ClickEvent.Serialize(click)[AvroWireFormat.SingleObjectHeaderLength..];

    /// <summary>A click of an older ClickEvent schema with the fields every version has, clicked at <c>_clickedAt</c>.</summary>
    private static GenericRecord OldClick(RecordSchema schema, string impressionId, long adId, long advertiserId, int salt, DateTime impressionAt)
    {
        var record = new GenericRecord(schema);
        record.Add("impressionId", impressionId);
        record.Add("adId", adId);
        record.Add("advertiserId", advertiserId);
        record.Add("salt", salt);
        record.Add("clickedAt", _clickedAt);
        record.Add("impressionAt", impressionAt);
        return record;
    }

    private static byte[] Encode(Schema schema, GenericRecord record)
    {
        using var stream = new MemoryStream();
        new GenericDatumWriter<GenericRecord>(schema).Write(record, new BinaryEncoder(stream));
        return stream.ToArray();
    }

    private static byte[] Confluent(int schemaId, byte[] body)
    {
        var bytes = new byte[AvroWireFormat.ConfluentHeaderLength + body.Length];
        bytes[0] = 0x00;
        BinaryPrimitives.WriteInt32BigEndian(bytes.AsSpan(1), schemaId);
        body.CopyTo(bytes, AvroWireFormat.ConfluentHeaderLength);
        return bytes;
    }

    // The CRC-64-AVRO reference algorithm from the Avro specification ("Schema Fingerprints").
    private static long Crc64Avro(byte[] data)
    {
        const long Empty = unchecked((long)0xc15d213aa4d7a795UL);
        var table = new long[256];
        for (var i = 0; i < 256; i++)
        {
            long fp = i;
            for (var j = 0; j < 8; j++)
            {
                fp = (long)((ulong)fp >> 1) ^ (Empty & -(fp & 1L));
            }

            table[i] = fp;
        }

        var result = Empty;
        foreach (var b in data)
        {
            result = (long)((ulong)result >> 8) ^ table[(int)(result ^ b) & 0xff];
        }

        return result;
    }
}
