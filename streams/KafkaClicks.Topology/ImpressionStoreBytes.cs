using System.Reflection;
using System.Text;
using Streamiz.Kafka.Net.Crosscutting;
using Streamiz.Kafka.Net.State;

namespace KafkaClicks.Topology;

/// <summary>
/// The impression store one layer down: the byte-level store (changelogging, then RocksDB) under the typed, metered
/// store Streamiz hands the processor. Two store calls per click (a lookup, and a write for a counted one) are most of
/// the stream thread's work, and the metered layer around each reads the local clock (<c>DateTime.Now</c>) twice, records
/// a latency sensor, allocates a closure and serializes the key again. Going under it writes exactly the same bytes
/// (the key as UTF-8, as Streamiz' <c>StringSerDes</c>; the value as <see cref="SeenImpressionSerDes"/>) to the same
/// changelogged store; only Streamiz' own put and fetch latency sensors of this store stop counting.
/// </summary>
internal sealed class ImpressionStoreBytes
{
    private readonly IWindowStore<Bytes, byte[]> _store;

    private ImpressionStoreBytes(IWindowStore<Bytes, byte[]> store) => _store = store;

    /// <summary>Name of the byte-level store's type, for the tests that check nothing under the metered layer was skipped.</summary>
    public string InnerStoreType => _store.GetType().Name;

    /// <summary>
    /// The byte-level store under <paramref name="store"/>, found by Streamiz' field of its wrapped stores; null where this
    /// version of Streamiz keeps it otherwise, and the typed store is used as it is.
    /// </summary>
    public static ImpressionStoreBytes? Below(IWindowStore<string, SeenImpression> store)
    {
        for (var type = store.GetType(); type is not null; type = type.BaseType)
        {
            if (type.GetField("wrapped", BindingFlags.Instance | BindingFlags.NonPublic)?.GetValue(store) is IWindowStore<Bytes, byte[]> inner)
            {
                return new ImpressionStoreBytes(inner);
            }
        }

        return null;
    }

    /// <summary>The key of <paramref name="impressionId"/> in the store.</summary>
    public static Bytes Key(string impressionId) => Bytes.Wrap(Encoding.UTF8.GetBytes(impressionId));

    /// <summary>What the store holds for <paramref name="key"/> in <paramref name="bucket"/>, or null (also for a value this version cannot read).</summary>
    public SeenImpression? Fetch(Bytes key, long bucket) => SeenImpressionSerDes.Decode(_store.Fetch(key, bucket));

    public void Put(Bytes key, SeenImpression seen, long bucket) => _store.Put(key, SeenImpressionSerDes.Encode(seen), bucket);
}
