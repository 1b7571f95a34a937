using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>Impression claims against the real Redis: pending until the click is durable, given back only by the click that made it.</summary>
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

    private static readonly DateTimeOffset ExpiresAt = DateTimeOffset.UtcNow.AddHours(2);

    private Task<ImpressionClaim> ClaimAsync(string impression) => _dedupe.ClaimAsync(impression);

    /// <summary>Finishes the claim and waits until Redis has it (the product does not wait).</summary>
    private async Task FinishAsync(string impression, ImpressionClaim claim)
    {
        _dedupe.Finish(impression, claim, ExpiresAt, TimeProvider.System);
        await _redis.GetDatabase().PingAsync();
    }

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
        await FinishAsync(impression, retry);

        // A repeat that met the retry's claim (say its own claim timed out and it failed too) cannot remove it.
        var repeat = await ClaimAsync(impression);
        Assert.Equal(DedupeResult.Duplicate, repeat.Result);
        await _dedupe.ReleaseAsync(impression, repeat);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(impression)).Result);
    }

    [Fact]
    public async Task A_claim_not_made_durable_holds_only_briefly_and_a_click_meeting_it_is_accepted_unchecked()
    {
        var impression = "test-" + Guid.NewGuid().ToString("N");
        var key = "click:imp:" + impression;
        var crashed = await ClaimAsync(impression);
        Assert.Equal(DedupeResult.New, crashed.Result);
        var pending = await _redis.GetDatabase().KeyTimeToLiveAsync(key);
        Assert.InRange(pending!.Value, TimeSpan.FromSeconds(1), ImpressionDeduplicator.PendingClaimLifetime);

        // Its process died before the event was durable: the retry is accepted (the aggregator drops a true repeat)...
        var retry = await ClaimAsync(impression);
        Assert.Equal(DedupeResult.Unfinished, retry.Result);

        // ...and once the retry is durable the impression counts as clicked for the token's lifetime.
        await FinishAsync(impression, retry);
        var done = await _redis.GetDatabase().KeyTimeToLiveAsync(key);
        Assert.InRange(done!.Value, TimeSpan.FromHours(2), TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(impression)).Result);

        // The dead click's claim can no longer be given back or finished over the retry's.
        await _dedupe.ReleaseAsync(impression, crashed);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(impression)).Result);
    }
}
