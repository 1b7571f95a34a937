using System.Text;
using KafkaClicks.Contracts;

namespace KafkaClicks.UnitTests.Contracts;

public class ClickEventReaderTests
{
    // The generic codec without the hand-written reader: the reference the fast path must agree with.
    private static readonly AvroCodec<ClickEvent> _generic = new();

    [Fact]
    public void ReaderIsWrittenForTheBundledSchema()
    {
        // Fails when schemas/ClickEvent.avsc changes: update ClickEventReader to the new field list, then this constant.
        Assert.Equal(ClickEventReader.WrittenForFingerprint, AvroWireFormat.Fingerprint(ClickEvent._SCHEMA));
    }

    [Fact]
    public void ReadsEveryFieldAsTheGenericReaderDoes()
    {
        var random = new Random(17);
        for (var i = 0; i < 2_000; i++)
        {
            var click = new ClickEvent
            {
                ImpressionId = RandomText(random, random.Next(0, 80)),
                AdId = NextLong(random),
                AdvertiserId = NextLong(random),
                Salt = random.Next(int.MinValue, int.MaxValue),
                ClickedAt = DateTime.UnixEpoch.AddMilliseconds(random.NextInt64(-10_000_000_000_000, 200_000_000_000_000)),
                ImpressionAt = DateTime.UnixEpoch.AddMilliseconds(random.NextInt64(0, 4_000_000_000_000)),
                DedupeChecked = random.Next(2) == 1,
                IngestInstance = RandomText(random, random.Next(0, 20)),
                ClientNetwork = RandomText(random, random.Next(0, 44)),
                UserAgentHash = RandomText(random, random.Next(0, 17)),
                ReferrerHost = RandomText(random, random.Next(0, 60)),
            };
            var bytes = _generic.Serialize(click);
            var expected = _generic.Deserialize(bytes);

            Assert.True(ClickEventReader.TryRead(bytes, out var view));
            Assert.Equal(expected.ImpressionId, Encoding.UTF8.GetString(view.ImpressionIdUtf8));
            Assert.Equal(expected.AdId, view.AdId);
            Assert.Equal(expected.Salt, view.Salt);
            Assert.Equal(new DateTimeOffset(expected.ClickedAt).ToUnixTimeMilliseconds(), view.ClickedAtMs);

            var fast = ContractCodecs.ClickEvent.Deserialize(bytes);
            Assert.Equal(expected.ImpressionId, fast.ImpressionId);
            Assert.Equal(expected.AdId, fast.AdId);
            Assert.Equal(expected.AdvertiserId, fast.AdvertiserId);
            Assert.Equal(expected.Salt, fast.Salt);
            Assert.Equal(expected.ClickedAt, fast.ClickedAt);
            Assert.Equal(expected.ClickedAt.Kind, fast.ClickedAt.Kind);
            Assert.Equal(expected.ImpressionAt, fast.ImpressionAt);
            Assert.Equal(expected.ImpressionAt.Kind, fast.ImpressionAt.Kind);
            Assert.Equal(expected.DedupeChecked, fast.DedupeChecked);
            Assert.Equal(expected.IngestInstance, fast.IngestInstance);
            Assert.Equal(expected.ClientNetwork, fast.ClientNetwork);
            Assert.Equal(expected.UserAgentHash, fast.UserAgentHash);
            Assert.Equal(expected.ReferrerHost, fast.ReferrerHost);
        }
    }

    [Fact]
    public void LeavesEveryTruncationOrTrailingByteToTheGenericCodec()
    {
        var bytes = _generic.Serialize(new ClickEvent { ImpressionId = "imp-1", AdId = 300, AdvertiserId = 7, Salt = 3, IngestInstance = "i" });
        for (var length = 0; length < bytes.Length; length++)
        {
            Assert.False(ClickEventReader.TryRead(bytes.AsSpan(0, length), out _));
            var error = Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(bytes.AsSpan(0, length)));
            Assert.Equal(AvroContractErrorReason.Truncated, error.Reason);
        }

        var trailing = bytes.Append((byte)0).ToArray();
        Assert.False(ClickEventReader.TryRead(trailing, out _));
        Assert.Equal(AvroContractErrorReason.Corrupt, Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(trailing)).Reason);

        var badBoolean = (byte[])bytes.Clone();
        badBoolean[^6] = 2; // dedupeChecked, before the one-character ingestInstance (length byte + 'i') and three empty strings
        Assert.False(ClickEventReader.TryRead(badBoolean, out _));
        Assert.Equal(AvroContractErrorReason.Corrupt, Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(badBoolean)).Reason);
    }

    [Fact]
    public void LeavesOtherEncodingsToTheGenericCodec()
    {
        var bytes = _generic.Serialize(new ClickEvent { ImpressionId = "imp-1", AdId = 300 });
        var confluent = new byte[] { 0, 0, 0, 0, 1 }.Concat(bytes[AvroWireFormat.SingleObjectHeaderLength..]).ToArray();
        Assert.False(ClickEventReader.TryRead(confluent, out _));

        var otherFingerprint = (byte[])bytes.Clone();
        otherFingerprint[5] ^= 0xFF;
        Assert.False(ClickEventReader.TryRead(otherFingerprint, out _));
        Assert.Equal(AvroContractErrorReason.UnknownFingerprint, Assert.Throws<AvroContractException>(() => ContractCodecs.ClickEvent.Deserialize(otherFingerprint)).Reason);
    }

    private static long NextLong(Random random) => random.Next(3) switch
    {
        0 => random.Next(0, 1_000),
        1 => random.NextInt64(long.MinValue, long.MaxValue),
        _ => -random.Next(0, 1_000),
    };

    private static string RandomText(Random random, int length)
    {
        const string alphabet = "abcXYZ0189-_.~éü€😀";
        var builder = new StringBuilder();
        while (builder.Length < length)
        {
            var next = random.Next(alphabet.Length);
            builder.Append(char.IsHighSurrogate(alphabet[next]) ? alphabet.Substring(next, 2) : char.IsLowSurrogate(alphabet[next]) ? "q" : alphabet[next].ToString());
        }

        return builder.ToString();
    }
}
