using System.Buffers.Binary;
using System.Text;
using KafkaClicks.Contracts.Internal;

namespace KafkaClicks.Contracts;

/// <summary>
/// The fields of one encoded <see cref="ClickEvent"/>, read in place: the strings are slices of the encoded bytes
/// (UTF-8), so reading allocates nothing. Valid only as long as the bytes it was read from.
/// </summary>
public readonly ref struct ClickEventView
{
    internal ClickEventView(
        ReadOnlySpan<byte> impressionIdUtf8,
        long adId,
        long advertiserId,
        int salt,
        long clickedAtMs,
        long impressionAtMs,
        bool dedupeChecked,
        ReadOnlySpan<byte> ingestInstanceUtf8,
        ReadOnlySpan<byte> clientNetworkUtf8,
        ReadOnlySpan<byte> userAgentHashUtf8,
        ReadOnlySpan<byte> referrerHostUtf8)
    {
        ImpressionIdUtf8 = impressionIdUtf8;
        AdId = adId;
        AdvertiserId = advertiserId;
        Salt = salt;
        ClickedAtMs = clickedAtMs;
        ImpressionAtMs = impressionAtMs;
        DedupeChecked = dedupeChecked;
        IngestInstanceUtf8 = ingestInstanceUtf8;
        ClientNetworkUtf8 = clientNetworkUtf8;
        UserAgentHashUtf8 = userAgentHashUtf8;
        ReferrerHostUtf8 = referrerHostUtf8;
    }

    public ReadOnlySpan<byte> ImpressionIdUtf8 { get; }

    public long AdId { get; }

    public long AdvertiserId { get; }

    public int Salt { get; }

    /// <summary>Milliseconds since the Unix epoch (UTC), as encoded.</summary>
    public long ClickedAtMs { get; }

    /// <summary>Milliseconds since the Unix epoch (UTC), as encoded.</summary>
    public long ImpressionAtMs { get; }

    public bool DedupeChecked { get; }

    public ReadOnlySpan<byte> IngestInstanceUtf8 { get; }

    public ReadOnlySpan<byte> ClientNetworkUtf8 { get; }

    public ReadOnlySpan<byte> UserAgentHashUtf8 { get; }

    public ReadOnlySpan<byte> ReferrerHostUtf8 { get; }

    /// <summary>The same values as the generated record Apache.Avro would decode (strings decoded as UTF-8, times as UTC).</summary>
    public ClickEvent ToClickEvent() => new()
    {
        ImpressionId = Encoding.UTF8.GetString(ImpressionIdUtf8),
        AdId = AdId,
        AdvertiserId = AdvertiserId,
        Salt = Salt,
        ClickedAt = DateTime.UnixEpoch.AddMilliseconds(ClickedAtMs),
        ImpressionAt = DateTime.UnixEpoch.AddMilliseconds(ImpressionAtMs),
        DedupeChecked = DedupeChecked,
        IngestInstance = Encoding.UTF8.GetString(IngestInstanceUtf8),
        ClientNetwork = Encoding.UTF8.GetString(ClientNetworkUtf8),
        UserAgentHash = Encoding.UTF8.GetString(UserAgentHashUtf8),
        ReferrerHost = Encoding.UTF8.GetString(ReferrerHostUtf8),
    };
}

/// <summary>
/// A hand-written reader for click events encoded with the current ClickEvent schema in single-object encoding: the
/// hot path of every consumer of clicks.raw (aggregator, reconciliation) decodes each click without Apache.Avro's
/// generic reader and without allocating. Anything else (an older schema, the Confluent wire format, malformed
/// bytes) is not read here: <see cref="TryRead"/> returns false and callers use the full <see cref="AvroCodec{T}"/>,
/// which resolves schemas and reports errors with their reason.
/// </summary>
public static class ClickEventReader
{
    /// <summary>
    /// Fingerprint of the schema this reader was written for. A unit test fails when schemas/ClickEvent.avsc changes,
    /// so the reader is updated with the schema; until then, if they ever differ, the fast path is off.
    /// </summary>
    internal const long WrittenForFingerprint = unchecked((long)0xD3B1B568B12F0B2E);

    private static readonly bool Enabled = AvroWireFormat.Fingerprint(ClickEvent._SCHEMA) == WrittenForFingerprint;

    /// <summary>Reads a single-object encoded click written with the current schema; false for anything else.</summary>
    public static bool TryRead(ReadOnlySpan<byte> data, out ClickEventView click)
    {
        click = default;
        if (data.Length < AvroWireFormat.SingleObjectHeaderLength
            || data[0] != AvroWireFormat.SingleObjectMarker0
            || data[1] != AvroWireFormat.SingleObjectMarker1
            || BinaryPrimitives.ReadInt64LittleEndian(data[2..AvroWireFormat.SingleObjectHeaderLength]) != WrittenForFingerprint)
        {
            return false;
        }

        return TryReadBody(data[AvroWireFormat.SingleObjectHeaderLength..], out click);
    }

    /// <summary>Reads an Avro body (no header) of the current schema; false when it is not exactly one valid value.</summary>
    internal static bool TryReadBody(ReadOnlySpan<byte> body, out ClickEventView click)
    {
        click = default;
        var reader = new AvroSpanReader(body);
        if (!Enabled
            || !reader.TryReadBytes(out var impressionId)
            || !reader.TryReadLong(out var adId)
            || !reader.TryReadLong(out var advertiserId)
            || !reader.TryReadInt(out var salt)
            || !reader.TryReadLong(out var clickedAtMs)
            || !reader.TryReadLong(out var impressionAtMs)
            || !reader.TryReadBoolean(out var dedupeChecked)
            || !reader.TryReadBytes(out var ingestInstance)
            || !reader.TryReadBytes(out var clientNetwork)
            || !reader.TryReadBytes(out var userAgentHash)
            || !reader.TryReadBytes(out var referrerHost)
            || !reader.AtEnd
            || !IsDateTimeMillis(clickedAtMs)
            || !IsDateTimeMillis(impressionAtMs))
        {
            return false;
        }

        click = new ClickEventView(impressionId, adId, advertiserId, salt, clickedAtMs, impressionAtMs, dedupeChecked, ingestInstance,
            clientNetwork, userAgentHash, referrerHost);
        return true;
    }

    // Outside DateTime's range Apache.Avro's conversion fails; leave those to the full codec's error.
    private static bool IsDateTimeMillis(long ms) => ms is >= -62_135_596_800_000 and <= 253_402_300_799_999;
}
