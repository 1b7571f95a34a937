namespace KafkaClicks.Ingest;

/// <summary>
/// The ingest role's in-memory cache of ad routes: a fixed array of slots, each ad in the one slot its id hashes to, a
/// new entry replacing whatever its slot held. A lookup or an insert reads or writes one reference: no lock, no
/// bookkeeping per hit, no compaction pass, and a footprint the capacity fixes. The ads clicked most stay in it, since
/// each miss puts its ad back; two busy ads that share a slot take turns. Entries expire after their time to live.
/// </summary>
internal sealed class AdCache
{
    private readonly Entry?[] _slots;

    public AdCache(int capacity) => _slots = new Entry?[capacity];

    /// <summary>True with the cached route (null: the ad is known not to exist) while an unexpired entry for the ad is held.</summary>
    public bool TryGet(long adId, out AdRoute? route)
    {
        var entry = Volatile.Read(ref _slots[Slot(adId)]);
        if (entry is not null && entry.AdId == adId && Environment.TickCount64 < entry.ExpiresAt)
        {
            route = entry.Route;
            return true;
        }

        route = null;
        return false;
    }

    public void Set(long adId, AdRoute? route, TimeSpan timeToLive) =>
        Volatile.Write(ref _slots[Slot(adId)], new Entry(adId, route, Environment.TickCount64 + (long)timeToLive.TotalMilliseconds));

    /// <summary>Drops the ad's entry, if its slot holds it.</summary>
    public void Remove(long adId)
    {
        ref var slot = ref _slots[Slot(adId)];
        var entry = Volatile.Read(ref slot);
        if (entry is not null && entry.AdId == adId)
        {
            Interlocked.CompareExchange(ref slot, null, entry);
        }
    }

    // Fibonacci hashing, the product's high 32 bits scaled to the slot count: consecutive ids (as ads are numbered)
    // spread evenly over the slots.
    private int Slot(long adId) => (int)(((ulong)(adId * -7046029254386353131L) >> 32) * (ulong)_slots.Length >> 32);

    private sealed record Entry(long AdId, AdRoute? Route, long ExpiresAt);
}
