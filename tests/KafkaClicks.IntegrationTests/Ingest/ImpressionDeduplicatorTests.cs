using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>Impression claims against the real Redis: a claim is given back only by the click that made it.</summary>
public sealed class ImpressionDeduplicatorTests : IAsyncLifetime
{
    private ConnectionMultiplexer _redis = null!;
    private ImpressionDeduplicator _dedupe = null!;

    public async Task InitializeAsync()
    {
        _redis = await ConnectionMultiplexer.ConnectAsync(RedisServer.ConnectionString);
        _dedupe = new ImpressionDeduplicator(_redis, Options.Create(new IngestOptions { DedupeTimeout = TimeSpan.FromSeconds(2) }),
            NullLogger<ImpressionDeduplicator>.Instance);
    }

    public async Task DisposeAsync() => await _redis.DisposeAsync();

    private Task<ImpressionClaim> ClaimAsync(string impression) =>
        _dedupe.ClaimAsync(impression, DateTimeOffset.UtcNow.AddMinutes(5), TimeProvider.System);

    [Fact]
    public async Task A_claim_given_back_lets_the_retry_count_but_a_repeat_cannot_give_back_the_first_clicks_claim()
    {
        var impression = "test-" + Guid.NewGuid().ToString("N");
        var first = await ClaimAsync(impression);
        Assert.Equal(DedupeResult.New, first.Result);

        // The click could not be made durable: its claim goes, and the user's retry is new again.
        await _dedupe.ReleaseAsync(impression, first);
        var retry = await ClaimAsync(impression);
        Assert.Equal(DedupeResult.New, retry.Result);

        // A repeat that met the retry's claim (say its own claim timed out and it failed too) cannot remove it.
        var repeat = await ClaimAsync(impression);
        Assert.Equal(DedupeResult.Duplicate, repeat.Result);
        await _dedupe.ReleaseAsync(impression, repeat);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(impression)).Result);
    }
}
