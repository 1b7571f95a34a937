using System.Buffers;
using System.Globalization;
using System.Text;

namespace KafkaClicks.Contracts;

/// <summary>
/// How clicks are placed on <see cref="Topics.ClicksRaw"/>: by ad, not by the record key, so one ad's clicks
/// share a partition and the aggregator counts without a repartition. A hot ad's clicks are spread over
/// <c>adId#salt</c> partitions. The hash is Kafka's own murmur2, as the Java client's default partitioner uses.
/// </summary>
public static class ClickPartitioning
{
    /// <summary>The string that is hashed for an ad and salt: <c>"42"</c>, or <c>"42#3"</c> for salt 3.</summary>
    public static string PartitionKey(long adId, int salt) =>
        salt == 0
            ? adId.ToString(CultureInfo.InvariantCulture)
            : string.Create(CultureInfo.InvariantCulture, $"{adId}#{salt}");

    /// <summary>The partition of <see cref="Topics.ClicksRaw"/> for an ad and salt.</summary>
    public static int PartitionFor(long adId, int salt, int partitionCount)
    {
        ArgumentOutOfRangeException.ThrowIfNegativeOrZero(partitionCount);
        Span<byte> buffer = stackalloc byte[48];
        var key = PartitionKey(adId, salt);
        var length = Encoding.ASCII.GetBytes(key, buffer);
        return (Murmur2(buffer[..length]) & 0x7fffffff) % partitionCount;
    }

    /// <summary>The salt of an impression for an ad spread over <paramref name="saltCount"/> salts: stable per impression.</summary>
    public static int SaltFor(string impressionId, int saltCount)
    {
        if (saltCount <= 1)
        {
            return 0;
        }

        var max = Encoding.UTF8.GetMaxByteCount(impressionId.Length);
        var rented = max <= 256 ? null : ArrayPool<byte>.Shared.Rent(max);
        Span<byte> buffer = rented ?? stackalloc byte[256];
        try
        {
            var length = Encoding.UTF8.GetBytes(impressionId, buffer);
            return (Murmur2(buffer[..length]) & 0x7fffffff) % saltCount;
        }
        finally
        {
            if (rented is not null)
            {
                ArrayPool<byte>.Shared.Return(rented);
            }
        }
    }

    /// <summary>Kafka's murmur2 (org.apache.kafka.common.utils.Utils.murmur2), bit for bit.</summary>
    public static int Murmur2(ReadOnlySpan<byte> data)
    {
        const uint m = 0x5bd1e995;
        const int r = 24;
        var length = data.Length;
        var h = 0x9747b28c ^ (uint)length;
        var length4 = length / 4;
        for (var i = 0; i < length4; i++)
        {
            var i4 = i * 4;
            var k = data[i4] | ((uint)data[i4 + 1] << 8) | ((uint)data[i4 + 2] << 16) | ((uint)data[i4 + 3] << 24);
            k *= m;
            k ^= k >> r;
            k *= m;
            h *= m;
            h ^= k;
        }

        var tail = length & ~3;
        switch (length % 4)
        {
            case 3:
                h ^= (uint)data[tail + 2] << 16;
                h ^= (uint)data[tail + 1] << 8;
                h ^= data[tail];
                h *= m;
                break;
            case 2:
                h ^= (uint)data[tail + 1] << 8;
                h ^= data[tail];
                h *= m;
                break;
            case 1:
                h ^= data[tail];
                h *= m;
                break;
        }

        h ^= h >> 13;
        h *= m;
        h ^= h >> 15;
        return unchecked((int)h);
    }
}
