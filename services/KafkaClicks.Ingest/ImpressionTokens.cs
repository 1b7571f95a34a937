using System.Buffers.Binary;
using System.Buffers.Text;
using System.Security.Cryptography;
using System.Text;
using KafkaClicks.Contracts;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>
/// What an authentic token says. <paramref name="Salt"/> was decided when the impression was minted, so every click of
/// the impression, on any ingest instance and at any time, lands on the same clicks.raw partition.
/// </summary>
public readonly record struct ImpressionClaims(Guid ImpressionId, long AdId, DateTimeOffset IssuedAt, DateTimeOffset ExpiresAt, string KeyId, int Salt)
{
    /// <summary>The impression id as it travels in events and dedupe keys (32 hex digits).</summary>
    public string ImpressionKey => ImpressionId.ToString("N");
}

/// <summary>A freshly minted token.</summary>
public sealed record MintedToken(string ImpressionId, string Token, DateTimeOffset ExpiresAt);

/// <summary>Why a token was refused.</summary>
public enum TokenStatus
{
    /// <summary>Authentic (it may still be expired: compare <see cref="ImpressionClaims.ExpiresAt"/>).</summary>
    Authentic,

    /// <summary>Not a token of ours: wrong length, encoding or version.</summary>
    Malformed,

    /// <summary>Well formed, but signed by a key we do not have or the signature does not match.</summary>
    Forged,
}

/// <summary>
/// Signed impression tokens: <c>base64url(version | keyIdLength | keyId | impressionId | adId | issuedAt | expiresAt | salt | HMAC-SHA256)</c>.
/// The MAC covers every byte before it and is compared in constant time. Thread-safe. Version 1 tokens (no salt byte,
/// minted before salts travelled in the token) are still accepted for their lifetime and always have salt 0.
/// </summary>
public sealed class ImpressionTokens
{
    private const byte Version = 2;
    private const byte VersionWithoutSalt = 1;
    private const int MacLength = 32;
    private const int FixedLengthWithoutSalt = 1 + 1 + 16 + 8 + 8 + 8;
    private const int FixedLength = FixedLengthWithoutSalt + 1;
    private const int MaxKeyIdLength = 16;

    /// <summary>Longest token text accepted before any decoding work is done.</summary>
    public const int MaxTokenLength = 128;

    private readonly Dictionary<string, byte[]> _keys;
    private readonly string _activeKeyId;
    private readonly byte[] _activeKeyIdBytes;
    private readonly TimeSpan _lifetime;
    private readonly TimeProvider _time;

    public ImpressionTokens(IOptions<IngestOptions> options, IOptions<ImpressionOptions> impressions, TimeProvider time)
    {
        var tokens = options.Value.Tokens;
        _keys = tokens.Keys.ToDictionary(k => k.Key, k => Convert.FromBase64String(k.Value), StringComparer.Ordinal);
        _activeKeyId = tokens.ActiveKeyId;
        _activeKeyIdBytes = Encoding.ASCII.GetBytes(_activeKeyId);
        _lifetime = impressions.Value.Lifetime;
        _time = time;
    }

    /// <summary>
    /// Mints a token for a new impression of <paramref name="adId"/>, whose clicks are spread over
    /// <paramref name="saltCount"/> salts (1: not spread); the impression's own salt is fixed here, in the signed token.
    /// </summary>
    public MintedToken Mint(long adId, int saltCount = 1)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(saltCount);
        ArgumentOutOfRangeException.ThrowIfGreaterThan(saltCount, 256);
        var impressionId = Guid.CreateVersion7();
        var impressionKey = impressionId.ToString("N");
        var issuedAt = _time.GetUtcNow();
        var expiresAt = issuedAt + _lifetime;
        var idLength = _activeKeyIdBytes.Length;
        Span<byte> buffer = stackalloc byte[FixedLength + MaxKeyIdLength + MacLength];
        buffer[0] = Version;
        buffer[1] = (byte)idLength;
        _activeKeyIdBytes.CopyTo(buffer[2..]);
        var body = buffer[(2 + idLength)..];
        impressionId.TryWriteBytes(body, bigEndian: true, out _);
        BinaryPrimitives.WriteInt64BigEndian(body[16..], adId);
        BinaryPrimitives.WriteInt64BigEndian(body[24..], issuedAt.ToUnixTimeMilliseconds());
        BinaryPrimitives.WriteInt64BigEndian(body[32..], expiresAt.ToUnixTimeMilliseconds());
        body[40] = (byte)ClickPartitioning.SaltFor(impressionKey, saltCount);
        var signedLength = FixedLength + idLength;
        HMACSHA256.HashData(_keys[_activeKeyId], buffer[..signedLength], buffer[signedLength..]);
        var token = Base64Url.EncodeToString(buffer[..(signedLength + MacLength)]);
        return new MintedToken(impressionKey, token, DateTimeOffset.FromUnixTimeMilliseconds(expiresAt.ToUnixTimeMilliseconds()));
    }

    /// <summary>Checks a token's form and signature. Never throws for any input.</summary>
    public TokenStatus Verify(ReadOnlySpan<char> token, out ImpressionClaims claims)
    {
        claims = default;
        // TryDecodeFromChars throws on characters outside the alphabet, so validate first: any input must end as Malformed.
        if (token.IsEmpty || token.Length > MaxTokenLength || !Base64Url.IsValid(token))
        {
            return TokenStatus.Malformed;
        }

        Span<byte> buffer = stackalloc byte[Base64Url.GetMaxDecodedLength(MaxTokenLength)];
        if (!Base64Url.TryDecodeFromChars(token, buffer, out var length))
        {
            return TokenStatus.Malformed;
        }

        var bytes = buffer[..length];
        if (length < FixedLengthWithoutSalt + MacLength + 1 || bytes[0] is not (Version or VersionWithoutSalt))
        {
            return TokenStatus.Malformed;
        }

        var fixedLength = bytes[0] == Version ? FixedLength : FixedLengthWithoutSalt;
        var idLength = bytes[1];
        if (idLength is 0 or > MaxKeyIdLength || length != fixedLength + idLength + MacLength)
        {
            return TokenStatus.Malformed;
        }

        var keyId = Encoding.ASCII.GetString(bytes.Slice(2, idLength));
        if (!_keys.TryGetValue(keyId, out var key))
        {
            return TokenStatus.Forged;
        }

        var signedLength = fixedLength + idLength;
        Span<byte> expected = stackalloc byte[MacLength];
        HMACSHA256.HashData(key, bytes[..signedLength], expected);
        if (!CryptographicOperations.FixedTimeEquals(expected, bytes.Slice(signedLength, MacLength)))
        {
            return TokenStatus.Forged;
        }

        var body = bytes[(2 + idLength)..];
        var issuedAt = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(body[24..]));
        var expiresAt = DateTimeOffset.FromUnixTimeMilliseconds(BinaryPrimitives.ReadInt64BigEndian(body[32..]));
        claims = new ImpressionClaims(
            new Guid(body[..16], bigEndian: true),
            BinaryPrimitives.ReadInt64BigEndian(body[16..]),
            issuedAt,
            // A token minted under a longer lifetime (before Impressions:Lifetime was lowered) is counted only within
            // the current one: the aggregator and reconciliation remember its impression no longer than that.
            expiresAt - issuedAt > _lifetime ? issuedAt + _lifetime : expiresAt,
            keyId,
            fixedLength == FixedLength ? body[40] : 0);
        return TokenStatus.Authentic;
    }
}
