using System.Security.Cryptography;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using KafkaClicks.UnitTests.Infrastructure;
using Microsoft.Extensions.Options;

namespace KafkaClicks.UnitTests.Ingest;

public class ImpressionTokensTests
{
    private static readonly string KeyA = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
    private static readonly string KeyB = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    private static ImpressionTokens Tokens(string active, TimeProvider? time = null, params (string Id, string Key)[] keys) =>
        Tokens(active, TimeSpan.FromHours(1), time, keys);

    private static ImpressionTokens Tokens(string active, TimeSpan lifetime, TimeProvider? time, params (string Id, string Key)[] keys) =>
        new(Options.Create(new IngestOptions
        {
            Tokens = new TokenOptions
            {
                ActiveKeyId = active,
                Keys = keys.ToDictionary(k => k.Id, k => k.Key),
            },
        }), Options.Create(new ImpressionOptions { Lifetime = lifetime }), time ?? TimeProvider.System);

    [Fact]
    [Trait("Category", "Billing")]
    public void A_token_minted_under_a_longer_lifetime_counts_only_within_the_current_one()
    {
        // Minted while Impressions:Lifetime was a day; verified after it was lowered to an hour: the aggregator and
        // reconciliation remember the impression an hour, so a click later than that must not be counted.
        var minted = Tokens("a", TimeSpan.FromDays(1), null, ("a", KeyA)).Mint(42);
        Assert.Equal(TokenStatus.Authentic, Tokens("a", TimeSpan.FromHours(1), null, ("a", KeyA)).Verify(minted.Token, out var claims));
        Assert.Equal(TimeSpan.FromHours(1), claims.ExpiresAt - claims.IssuedAt);

        // A token minted under a shorter lifetime keeps its own expiry.
        var brief = Tokens("a", TimeSpan.FromMinutes(5), null, ("a", KeyA)).Mint(42);
        Assert.Equal(TokenStatus.Authentic, Tokens("a", TimeSpan.FromHours(1), null, ("a", KeyA)).Verify(brief.Token, out var briefClaims));
        Assert.Equal(TimeSpan.FromMinutes(5), briefClaims.ExpiresAt - briefClaims.IssuedAt);
    }

    [Fact]
    public void A_minted_token_verifies_with_its_claims()
    {
        var tokens = Tokens("a", null, ("a", KeyA));
        var minted = tokens.Mint(42);

        Assert.Equal(TokenStatus.Authentic, tokens.Verify(minted.Token, out var claims));
        Assert.Equal(42, claims.AdId);
        Assert.Equal(minted.ImpressionId, claims.ImpressionKey);
        Assert.Equal("a", claims.KeyId);
        Assert.Equal(minted.ExpiresAt, claims.ExpiresAt);
        Assert.Equal(TimeSpan.FromHours(1), claims.ExpiresAt - claims.IssuedAt);
        Assert.True(minted.Token.Length <= ImpressionTokens.MaxTokenLength);
        Assert.DoesNotContain('+', minted.Token);
        Assert.DoesNotContain('/', minted.Token);
    }

    [Fact]
    public void Every_impression_gets_its_own_id()
    {
        var tokens = Tokens("a", null, ("a", KeyA));
        var ids = Enumerable.Range(0, 1000).Select(_ => tokens.Mint(1).ImpressionId).ToHashSet();
        Assert.Equal(1000, ids.Count);
    }

    [Fact]
    public void Changing_any_byte_makes_the_token_forged_or_malformed()
    {
        var tokens = Tokens("a", null, ("a", KeyA));
        var token = tokens.Mint(7).Token;
        var bytes = Base64UrlDecode(token);
        for (var i = 0; i < bytes.Length; i++)
        {
            var copy = (byte[])bytes.Clone();
            copy[i] ^= 0x01;
            var status = tokens.Verify(Base64UrlEncode(copy), out _);
            Assert.NotEqual(TokenStatus.Authentic, status);
        }
    }

    [Fact]
    public void A_token_signed_with_an_unknown_or_different_key_is_forged()
    {
        var minted = Tokens("a", null, ("a", KeyA)).Mint(7);
        Assert.Equal(TokenStatus.Forged, Tokens("b", null, ("b", KeyB)).Verify(minted.Token, out _));
        Assert.Equal(TokenStatus.Forged, Tokens("a", null, ("a", KeyB)).Verify(minted.Token, out _));
    }

    [Fact]
    public void Rotation_keeps_tokens_of_the_previous_key_valid()
    {
        var old = Tokens("a", null, ("a", KeyA)).Mint(7);
        var rotated = Tokens("b", null, ("a", KeyA), ("b", KeyB));
        Assert.Equal(TokenStatus.Authentic, rotated.Verify(old.Token, out var claims));
        Assert.Equal("a", claims.KeyId);
        Assert.Equal(TokenStatus.Authentic, rotated.Verify(rotated.Mint(8).Token, out var fresh));
        Assert.Equal("b", fresh.KeyId);
    }

    [Fact]
    public void The_salt_is_decided_at_mint_time_and_signed_into_the_token()
    {
        var tokens = Tokens("a", null, ("a", KeyA));
        var salts = new HashSet<int>();
        for (var i = 0; i < 200; i++)
        {
            var minted = tokens.Mint(9, saltCount: 8);
            Assert.Equal(TokenStatus.Authentic, tokens.Verify(minted.Token, out var claims));
            Assert.Equal(ClickPartitioning.SaltFor(minted.ImpressionId, 8), claims.Salt);
            salts.Add(claims.Salt);
        }

        Assert.Equal(Enumerable.Range(0, 8).ToHashSet(), salts);
        Assert.Equal(TokenStatus.Authentic, tokens.Verify(tokens.Mint(9).Token, out var unsalted));
        Assert.Equal(0, unsalted.Salt);
    }

    [Fact]
    public void A_version_1_token_without_a_salt_byte_stays_valid_with_salt_0()
    {
        // Minted by a version that did not carry the salt: version 1, no salt byte, the MAC over the rest.
        var key = Convert.FromBase64String(KeyA);
        var body = new byte[1 + 1 + 1 + 16 + 8 + 8 + 8];
        body[0] = 1;
        body[1] = 1;
        body[2] = (byte)'a';
        var impressionId = Guid.CreateVersion7();
        impressionId.TryWriteBytes(body.AsSpan(3), bigEndian: true, out _);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(body.AsSpan(19), 77);
        var now = DateTimeOffset.UtcNow.ToUnixTimeMilliseconds();
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(body.AsSpan(27), now);
        System.Buffers.Binary.BinaryPrimitives.WriteInt64BigEndian(body.AsSpan(35), now + 60_000);
        var token = Base64UrlEncode([.. body, .. HMACSHA256.HashData(key, body)]);

        Assert.Equal(TokenStatus.Authentic, Tokens("a", null, ("a", KeyA)).Verify(token, out var claims));
        Assert.Equal(77, claims.AdId);
        Assert.Equal(impressionId, claims.ImpressionId);
        Assert.Equal(0, claims.Salt);
        Assert.Equal(TokenStatus.Forged, Tokens("a", null, ("a", KeyB)).Verify(token, out _));
    }

    [Theory]
    [InlineData("")]
    [InlineData("x")]
    [InlineData("not a token at all")]
    [InlineData("////")]
    [InlineData("AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA")]
    public void Garbage_is_malformed(string token) =>
        Assert.Equal(TokenStatus.Malformed, Tokens("a", null, ("a", KeyA)).Verify(token, out _));

    [Fact]
    public void An_overlong_token_is_refused_before_decoding() =>
        Assert.Equal(TokenStatus.Malformed, Tokens("a", null, ("a", KeyA)).Verify(new string('A', 100_000), out _));

    [Fact]
    public void Expiry_is_in_the_claims_and_authentic_tokens_stay_authentic_after_it()
    {
        var clock = new ManualClock(DateTimeOffset.Parse("2026-01-01T00:00:00Z", System.Globalization.CultureInfo.InvariantCulture));
        var tokens = Tokens("a", clock, ("a", KeyA));
        var minted = tokens.Mint(1);
        clock.Now += TimeSpan.FromHours(2);
        Assert.Equal(TokenStatus.Authentic, tokens.Verify(minted.Token, out var claims));
        Assert.True(clock.GetUtcNow() > claims.ExpiresAt);
    }

    private static byte[] Base64UrlDecode(string s) => System.Buffers.Text.Base64Url.DecodeFromChars(s);

    private static string Base64UrlEncode(byte[] b) => System.Buffers.Text.Base64Url.EncodeToString(b);
}
