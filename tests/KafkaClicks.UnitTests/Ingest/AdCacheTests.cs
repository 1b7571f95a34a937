using KafkaClicks.Ingest;

namespace KafkaClicks.UnitTests.Ingest;

public class AdCacheTests
{
    private static readonly AdRoute Route7 = new(7, 1, "https://advertiser.example/7");

    [Fact]
    public void A_cached_route_is_found_for_its_ad_only()
    {
        var cache = new AdCache(1_000);
        cache.Set(7, Route7, TimeSpan.FromMinutes(5));

        Assert.True(cache.TryGet(7, out var route));
        Assert.Same(Route7, route);
        Assert.False(cache.TryGet(8, out _));
    }

    [Fact]
    public void An_ad_known_not_to_exist_is_cached_as_null()
    {
        var cache = new AdCache(1_000);
        cache.Set(9, null, TimeSpan.FromSeconds(30));

        Assert.True(cache.TryGet(9, out var route));
        Assert.Null(route);
    }

    [Fact]
    public void An_expired_entry_is_not_found()
    {
        var cache = new AdCache(1_000);
        cache.Set(7, Route7, TimeSpan.Zero);

        Assert.False(cache.TryGet(7, out _));
    }

    [Fact]
    public void Ads_sharing_a_slot_replace_each_other_and_removing_one_leaves_the_other()
    {
        var cache = new AdCache(1);
        var route8 = new AdRoute(8, 1, "https://advertiser.example/8");
        cache.Set(7, Route7, TimeSpan.FromMinutes(5));
        cache.Set(8, route8, TimeSpan.FromMinutes(5));

        Assert.False(cache.TryGet(7, out _));
        cache.Remove(7);
        Assert.True(cache.TryGet(8, out var route));
        Assert.Same(route8, route);
        cache.Remove(8);
        Assert.False(cache.TryGet(8, out _));
    }

    [Fact]
    public void Consecutive_ad_ids_spread_over_the_slots()
    {
        const int Capacity = 1_024;
        var cache = new AdCache(Capacity);
        for (long adId = 1; adId <= Capacity; adId++)
        {
            cache.Set(adId, new AdRoute(adId, 1, null), TimeSpan.FromMinutes(5));
        }

        var kept = Enumerable.Range(1, Capacity).Count(adId => cache.TryGet(adId, out _));
        Assert.True(kept >= Capacity * 6 / 10, $"only {kept} of {Capacity} consecutive ads kept: the hash clusters them");
    }
}
