using System.Runtime.CompilerServices;
using Confluent.Kafka;
using KafkaClicks.Contracts;

namespace KafkaClicks.Benchmarks;

/// <summary>What a generated load should produce downstream.</summary>
public sealed record LoadExpectation(long Windows, long DistinctImpressions, IReadOnlyDictionary<(long AdId, int Salt, DateTime Minute), long> PerWindow);

/// <summary>
/// Generates raw clicks on clicks.raw the way ingest places them: 5% of clicks on 20 hot ads spread over 8 salts,
/// 2% repeated impressions, event times over 20 minutes from a start, then one click per partition an hour later
/// so every partition's windows close. Shared by the benchmarks that read clicks.raw.
/// </summary>
public static class RawClickLoad
{
    public const int HotAds = 20;
    public const int Salts = 8;

    /// <summary>Ad ids at or above this are the closing clicks, not part of the measured load.</summary>
    public const long ClosingAdIds = 1_000_000_000L;

    public static LoadExpectation Produce(string bootstrapServers, int partitions, int count, int ads, DateTime start)
    {
        var random = new Random(11);
        var windows = new Dictionary<(long, int, DateTime), long>();
        var recent = new ClickEvent[4096];
        long distinct = 0;
        var failed = new StrongBox<long>(0);
        using var producer = new ProducerBuilder<string, ClickEvent>(new ProducerConfig
            {
                BootstrapServers = bootstrapServers,
                EnableIdempotence = true,
                Acks = Acks.All,
                LingerMs = 20,
                BatchNumMessages = 10_000,
                CompressionType = CompressionType.Lz4,
                QueueBufferingMaxMessages = 1_000_000,
            })
            .SetValueSerializer(new AvroKafkaSerializer<ClickEvent>(ContractCodecs.ClickEvent))
            .Build();
        for (var i = 0; i < count; i++)
        {
            ClickEvent click;
            if (i > recent.Length && random.NextDouble() < 0.02)
            {
                click = recent[random.Next(recent.Length)];
            }
            else
            {
                var hot = random.NextDouble() < 0.05;
                var adId = hot ? 1 + random.Next(HotAds) : 1 + HotAds + random.Next(ads - HotAds);
                var impression = Guid.CreateVersion7().ToString("N");
                var clickedAt = start.AddMilliseconds(Math.Floor((double)i / count * 20 * 60_000) + random.Next(5_000));
                click = new ClickEvent
                {
                    ImpressionId = impression,
                    AdId = adId,
                    AdvertiserId = adId % 1000,
                    Salt = hot ? ClickPartitioning.SaltFor(impression, Salts) : 0,
                    ClickedAt = clickedAt,
                    ImpressionAt = clickedAt.AddSeconds(-5),
                };
                recent[i % recent.Length] = click;
                distinct++;
                var key = (click.AdId, click.Salt, new DateTime(clickedAt.Ticks - (clickedAt.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc));
                windows[key] = windows.GetValueOrDefault(key) + 1;
            }

            Send(producer, click, partitions, failed);
        }

        for (var partition = 0; partition < partitions; partition++)
        {
            var adId = ClosingAdIds + partition;
            while (ClickPartitioning.PartitionFor(adId, 0, partitions) != partition)
            {
                adId += partitions;
            }

            Send(producer, new ClickEvent
            {
                ImpressionId = Guid.CreateVersion7().ToString("N"),
                AdId = adId,
                ClickedAt = start.AddHours(1),
                ImpressionAt = start.AddHours(1),
            }, partitions, failed);
        }

        producer.Flush(TimeSpan.FromMinutes(2));
        if (Interlocked.Read(ref failed.Value) > 0)
        {
            throw new InvalidOperationException($"{failed.Value} generated clicks were not delivered to the broker; the load is incomplete");
        }

        return new LoadExpectation(windows.Count, distinct, windows);
    }

    /// <summary>The embedded broker keeps at most 5 MiB per partition: refuse to measure a truncated topic.</summary>
    public static void EnsureNothingTruncated(string bootstrapServers, int partitions)
    {
        using var consumer = new ConsumerBuilder<byte[], byte[]>(new ConsumerConfig { BootstrapServers = bootstrapServers, GroupId = "bench-watermarks" }).Build();
        for (var p = 0; p < partitions; p++)
        {
            var low = consumer.QueryWatermarkOffsets(new TopicPartition(Topics.ClicksRaw, p), TimeSpan.FromSeconds(10)).Low;
            if (low > 0)
            {
                throw new InvalidOperationException($"clicks.raw partition {p} lost its first {low.Value} records to the broker's retention; use fewer clicks");
            }
        }
    }

    /// <summary>The baseline: a plain consumer reading and decoding the whole topic.</summary>
    public static long ReadAll(string bootstrapServers, int partitions)
    {
        using var consumer = new ConsumerBuilder<string, ClickEvent>(new ConsumerConfig
            {
                BootstrapServers = bootstrapServers,
                GroupId = "bench-baseline",
                AutoOffsetReset = AutoOffsetReset.Earliest,
                EnableAutoCommit = false,
                EnablePartitionEof = true,
            })
            .SetValueDeserializer(new AvroKafkaDeserializer<ClickEvent>(ContractCodecs.ClickEvent))
            .Build();
        consumer.Assign(Enumerable.Range(0, partitions).Select(p => new TopicPartitionOffset(Topics.ClicksRaw, p, Offset.Beginning)));
        var remaining = partitions;
        long read = 0;
        while (remaining > 0)
        {
            var result = consumer.Consume(TimeSpan.FromSeconds(5));
            if (result is null)
            {
                continue;
            }

            if (result.IsPartitionEOF)
            {
                remaining--;
                continue;
            }

            read++;
        }

        return read;
    }

    private static void Send(IProducer<string, ClickEvent> producer, ClickEvent click, int partitions, StrongBox<long> failed)
    {
        var partition = ClickPartitioning.PartitionFor(click.AdId, click.Salt, partitions);
        while (true)
        {
            try
            {
                producer.Produce(new TopicPartition(Topics.ClicksRaw, partition),
                    new Message<string, ClickEvent> { Key = click.ImpressionId, Value = click, Timestamp = new Timestamp(click.ClickedAt) },
                    report =>
                    {
                        if (report.Error.IsError)
                        {
                            Interlocked.Increment(ref failed.Value);
                        }
                    });
                return;
            }
            catch (ProduceException<string, ClickEvent> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                producer.Poll(TimeSpan.FromMilliseconds(50));
            }
        }
    }
}
