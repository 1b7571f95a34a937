using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;
using StackExchange.Redis;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>
/// Impression claims against the real Redis, across instances: a claim is a repeat once its instance settled it,
/// given back only by the click that made it, and taken over by a retry when its click can no longer become durable.
/// </summary>
[Trait("Storage", "none")]
public sealed class ImpressionDeduplicatorTests : IAsyncLifetime
{
    private static readonly DateTimeOffset ExpiresAt = DateTimeOffset.UtcNow.AddHours(2);
    private readonly List<ImpressionDeduplicator> _instances = [];
    private ConnectionMultiplexer _redis = null!;

    public async Task InitializeAsync() => _redis = await ConnectionMultiplexer.ConnectAsync(RedisServer.ConnectionString);

    public async Task DisposeAsync()
    {
        _instances.ForEach(i => i.Dispose());
        await _redis.DisposeAsync();
    }

    /// <summary>An ingest instance's deduplicator (its own instance id), with a 1 s produce deadline.</summary>
    private ImpressionDeduplicator Instance()
    {
        var instance = new ImpressionDeduplicator(_redis,
            Options.Create(new IngestOptions { DedupeTimeout = TimeSpan.FromSeconds(2), ProduceTimeout = TimeSpan.FromSeconds(1) }),
            Options.Create(new ImpressionOptions()), NullLogger<ImpressionDeduplicator>.Instance);
        _instances.Add(instance);
        return instance;
    }

    private static Task<ImpressionClaim> ClaimAsync(ImpressionDeduplicator instance, string impression) =>
        instance.ClaimAsync(impression, ExpiresAt, TimeProvider.System);

    private static string NewImpression() => "test-" + Guid.NewGuid().ToString("N");

    /// <summary>
    /// At shutdown the Redis connection can close while the deduplicator's publisher still runs. The publication then fails
    /// quietly: thrown from the timer's callback, it ended the whole process (once in a CI run, the cluster lane's test
    /// host crashed after IngestTests and took every remaining test of the lane with it).
    /// </summary>
    [Fact]
    public async Task A_deduplicator_outliving_its_redis_connection_stops_publishing_without_ending_the_process()
    {
        var redis = await ConnectionMultiplexer.ConnectAsync(RedisServer.ConnectionString);
        var instance = new ImpressionDeduplicator(redis,
            Options.Create(new IngestOptions { DedupeTimeout = TimeSpan.FromSeconds(2), ProduceTimeout = TimeSpan.FromSeconds(1) }),
            Options.Create(new ImpressionOptions()), NullLogger<ImpressionDeduplicator>.Instance);
        var unhandled = new List<object>();
        UnhandledExceptionEventHandler record = (_, e) =>
        {
            lock (unhandled)
            {
                unhandled.Add(e.ExceptionObject);
            }
        };
        AppDomain.CurrentDomain.UnhandledException += record;
        try
        {
            await redis.DisposeAsync();

            // Past the publisher's refresh (1 s), when it writes again even with nothing newly settled.
            await Task.Delay(TimeSpan.FromSeconds(2.5));
            instance.Dispose();
        }
        finally
        {
            AppDomain.CurrentDomain.UnhandledException -= record;
        }

        Assert.Empty(unhandled);
    }

    [Fact]
    public async Task A_settled_claim_makes_every_later_click_on_any_instance_a_repeat_for_the_tokens_lifetime()
    {
        var (a, b) = (Instance(), Instance());
        var impression = NewImpression();
        var first = await ClaimAsync(a, impression);
        Assert.Equal(DedupeResult.New, first.Result);
        a.Settle(first);

        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(b, impression)).Result);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(a, impression)).Result);
        var ttl = await _redis.GetDatabase().KeyTimeToLiveAsync("click:imp:" + impression);
        Assert.InRange(ttl!.Value, TimeSpan.FromHours(2) - TimeSpan.FromMinutes(1), TimeSpan.FromHours(2) + TimeSpan.FromMinutes(1));
    }

    [Fact]
    public async Task A_claim_given_back_lets_the_retry_count_but_a_repeat_cannot_give_back_the_first_clicks_claim()
    {
        var (a, b) = (Instance(), Instance());
        var impression = NewImpression();
        var first = await ClaimAsync(a, impression);
        Assert.Equal(DedupeResult.New, first.Result);

        // The click could not be made durable: its claim goes, and the user's retry is new again.
        await a.ReleaseAsync(impression, first);
        var retry = await ClaimAsync(b, impression);
        Assert.Equal(DedupeResult.New, retry.Result);
        b.Settle(retry);

        // A repeat that met the retry's claim (say its own claim timed out and it failed too) cannot remove it.
        var repeat = await ClaimAsync(a, impression);
        Assert.Equal(DedupeResult.Duplicate, repeat.Result);
        await a.ReleaseAsync(impression, repeat);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(a, impression)).Result);
    }

    [Fact]
    [Trait("Category", "Billing")]
    public async Task A_claim_given_back_never_reads_as_a_settled_click_to_a_click_that_met_it_before()
    {
        var (a, b) = (Instance(), Instance());
        var impression = NewImpression();
        var key = "click:imp:" + impression;
        var first = await ClaimAsync(a, impression);
        var met = await _redis.GetDatabase().StringGetAsync(key); // what a second click's SET NX GET returned

        // The first click cannot be made durable: its claim is given back, which settles its number too.
        await a.ReleaseAsync(impression, first);
        await Task.Delay(ImpressionDeduplicator.PublishInterval * 4);

        // The second click now looks at the claim it met: that claim is gone, so it must claim again (and be counted),
        // not take the settled number for a durable first click and answer a repeat, losing the click.
        Assert.Equal(ImpressionDeduplicator.ClaimState.Replaced, await b.StateOfAsync(_redis.GetDatabase(), key, met));
        Assert.Equal(DedupeResult.New, (await ClaimAsync(b, impression)).Result);
    }

    [Fact]
    public async Task The_retry_of_a_click_whose_instance_died_before_it_was_durable_is_accepted_and_takes_the_claim_over()
    {
        var (dead, live) = (Instance(), Instance());
        var impression = NewImpression();
        Assert.Equal(DedupeResult.New, (await ClaimAsync(dead, impression)).Result);
        dead.Dispose(); // the process stops here: its claim is never settled

        // Once the dead instance no longer reads as alive, the retry is accepted at once (the aggregator drops a true
        // repeat), and its claim replaces the dead one...
        await Task.Delay(ImpressionDeduplicator.AliveLifetime + TimeSpan.FromMilliseconds(200));
        var retry = await ClaimAsync(live, impression);
        Assert.Equal(DedupeResult.Unfinished, retry.Result);

        // ...so once the retry is durable, the impression counts as clicked.
        live.Settle(retry);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(live, impression)).Result);
    }

    [Fact]
    public async Task A_click_meeting_a_claim_still_being_made_durable_waits_for_it_and_is_then_a_repeat()
    {
        var (a, b) = (Instance(), Instance());
        var impression = NewImpression();
        var first = await ClaimAsync(a, impression);

        // The same impression clicked twice at once: the second waits while the first is being produced.
        var second = ClaimAsync(b, impression);
        await Task.Delay(300);
        Assert.False(second.IsCompleted);
        a.Settle(first);
        Assert.Equal(DedupeResult.Duplicate, (await second).Result);
    }

    /// <summary>
    /// A repeat on the instance whose click holds the claim reads that claim's state where it is kept, not from the
    /// last publication: it waits while the click is in flight, is a repeat once the click is durable, and counts once
    /// the claim is given back.
    /// </summary>
    [Fact]
    [Trait("Category", "Billing")]
    public async Task On_the_instance_holding_the_claim_a_repeat_waits_for_the_click_and_counts_only_if_its_claim_is_given_back()
    {
        var a = Instance();
        var durable = NewImpression();
        var first = await ClaimAsync(a, durable);
        var repeat = ClaimAsync(a, durable);
        await Task.Delay(300);
        Assert.False(repeat.IsCompleted);
        a.Settle(first);
        Assert.Equal(DedupeResult.Duplicate, (await repeat).Result);

        var lost = NewImpression();
        var failed = await ClaimAsync(a, lost);
        var retry = ClaimAsync(a, lost);
        await Task.Delay(300);
        Assert.False(retry.IsCompleted);
        await a.ReleaseAsync(lost, failed);
        var counted = await retry;
        Assert.Equal(DedupeResult.New, counted.Result);
        a.Settle(counted);

        // A claim given back after a click met it reads as replaced, never as a durable click.
        var key = "click:imp:" + NewImpression();
        var given = await ClaimAsync(a, key["click:imp:".Length..]);
        var met = await _redis.GetDatabase().StringGetAsync(key);
        await a.ReleaseAsync(key["click:imp:".Length..], given);
        Assert.Equal(ImpressionDeduplicator.ClaimState.Replaced, await a.StateOfAsync(_redis.GetDatabase(), key, met));
    }

    [Fact]
    public async Task A_claim_left_unsettled_in_a_live_instance_is_given_back_so_the_retry_counts()
    {
        var (a, b) = (Instance(), Instance());
        var impression = NewImpression();
        var stuck = await ClaimAsync(a, impression); // its click never finishes, yet its process lives on
        Assert.Equal(DedupeResult.New, stuck.Result);

        // The retry waits at most the produce deadline and a second, and is then counted, whether the stuck claim
        // was given back meanwhile (New) or not yet (Unfinished)...
        var retry = await ClaimAsync(b, impression);
        Assert.Contains(retry.Result, new[] { DedupeResult.New, DedupeResult.Unfinished });
        b.Settle(retry);

        // ...and the stuck claim does not keep the instance's later claims unsettled: they become repeats.
        var later = NewImpression();
        var next = await ClaimAsync(a, later);
        a.Settle(next);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(b, later)).Result);
        Assert.Equal(DedupeResult.Duplicate, (await ClaimAsync(b, impression)).Result);
    }
}
