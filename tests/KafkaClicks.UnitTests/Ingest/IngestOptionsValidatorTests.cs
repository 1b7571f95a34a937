using System.Security.Cryptography;
using KafkaClicks.Ingest;

namespace KafkaClicks.UnitTests.Ingest;

public class IngestOptionsValidatorTests
{
    private static readonly string GoodKey = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));

    [Fact]
    public void Good_options_pass() =>
        Assert.True(new IngestOptionsValidator().Validate(null, Options(("k1", GoodKey), "k1")).Succeeded);

    [Theory]
    [InlineData("k1", "c2hvcnQ=", "k1", "not base64 of at least 32 bytes")]
    [InlineData("k1", "%%%", "k1", "not base64 of at least 32 bytes")]
    [InlineData("bad id!", null, "bad id!", "a key id is 1 to 16 characters")]
    [InlineData("k1", null, "k2", "'k2' is not one of Ingest:Tokens:Keys")]
    public void Wrong_keys_fail_with_a_message_naming_them(string id, string? key, string active, string expected)
    {
        var result = new IngestOptionsValidator().Validate(null, Options((id, key ?? GoodKey), active));
        Assert.True(result.Failed);
        Assert.Contains(expected, result.FailureMessage, StringComparison.Ordinal);
    }

    [Fact]
    public void No_keys_at_all_fails() =>
        Assert.Contains("Ingest:Tokens:Keys is empty", new IngestOptionsValidator().Validate(null, new IngestOptions()).FailureMessage, StringComparison.Ordinal);

    private static IngestOptions Options((string Id, string Key) key, string active) => new()
    {
        Tokens = new TokenOptions { ActiveKeyId = active, Keys = new() { [key.Id] = key.Key } },
    };
}
