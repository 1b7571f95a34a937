using System.Diagnostics;
using Confluent.Kafka;
using KafkaClicks.Contracts;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>One record of clicks.minute as the collector saw it.</summary>
public readonly record struct Emission(bool Final, long Clicks, DateTime EmittedAt, int Partition, long Offset);

/// <summary>
/// Reads clicks.minute from the beginning of every partition on a background thread and keeps every record per
/// window, so a test can ask for the latest final of each window and for any extra or contradicting emission.
/// </summary>
public sealed class MinuteCountCollector : IDisposable
{
    private readonly IConsumer<string, MinuteCount?> _consumer;
    private readonly CancellationTokenSource _stop = new();
    private readonly Task _loop;
    private readonly Lock _gate = new();
    private readonly Dictionary<WindowKey, List<Emission>> _windows = [];
    private readonly Dictionary<int, long> _firstOffsets = [];
    private Exception? _failure;
    private long _records;

    public MinuteCountCollector(string bootstrapServers, string topic)
    {
        _consumer = new ConsumerBuilder<string, MinuteCount?>(new ConsumerConfig
            {
                BootstrapServers = bootstrapServers,
                GroupId = "crash-test-collector-" + Guid.NewGuid().ToString("N"),
                AutoOffsetReset = AutoOffsetReset.Earliest,
                EnableAutoCommit = false,
            })
            .SetValueDeserializer(new MinuteCountsOnlyDeserializer())
            .Build();
        using (var admin = new DependentAdminClientBuilder(_consumer.Handle).Build())
        {
            var partitions = admin.GetMetadata(topic, TimeSpan.FromSeconds(10)).Topics.Single().Partitions;
            _consumer.Assign(partitions.Select(p => new TopicPartitionOffset(topic, p.PartitionId, Offset.Beginning)));
        }

        _loop = Task.Factory.StartNew(Run, TaskCreationOptions.LongRunning);
    }

    public long Records => Interlocked.Read(ref _records);

    /// <summary>Waits until every key of <paramref name="expected"/> has a final record; false when time runs out.</summary>
    public async Task<bool> WaitForFinalsAsync(IEnumerable<WindowKey> expected, TimeSpan timeout, Action? whileWaiting = null)
    {
        var wanted = expected.ToList();
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            ThrowIfFailed();
            whileWaiting?.Invoke();
            lock (_gate)
            {
                if (wanted.All(k => _windows.TryGetValue(k, out var list) && list.Any(e => e.Final)))
                {
                    return true;
                }
            }

            await Task.Delay(200);
        }

        return false;
    }

    /// <summary>A copy of everything read so far, per window.</summary>
    public Dictionary<WindowKey, List<Emission>> Snapshot()
    {
        ThrowIfFailed();
        lock (_gate)
        {
            return _windows.ToDictionary(kv => kv.Key, kv => kv.Value.ToList());
        }
    }

    /// <summary>Partitions whose first record read was not at offset 0: the broker dropped output before it was read.</summary>
    public IReadOnlyDictionary<int, long> TruncatedPartitions()
    {
        lock (_gate)
        {
            return _firstOffsets.Where(kv => kv.Value > 0).ToDictionary(kv => kv.Key, kv => kv.Value);
        }
    }

    public void Dispose()
    {
        _stop.Cancel();
        _loop.Wait(TimeSpan.FromSeconds(10));
        _consumer.Close();
        _consumer.Dispose();
        _stop.Dispose();
    }

    private void Run()
    {
        try
        {
            while (!_stop.IsCancellationRequested)
            {
                var result = _consumer.Consume(TimeSpan.FromMilliseconds(200));
                if (result is null)
                {
                    continue;
                }

                lock (_gate)
                {
                    // The first record read of a partition, count or progress marker: where the topic began for this reader.
                    _firstOffsets.TryAdd(result.Partition.Value, result.Offset.Value);
                }

                if (result.Message.Value is not { } count)
                {
                    continue; // a progress marker
                }

                Interlocked.Increment(ref _records);
                var key = new WindowKey(count.AdId, count.Salt, (long)(DateTime.SpecifyKind(count.WindowStart, DateTimeKind.Utc) - DateTime.UnixEpoch).TotalMilliseconds);
                var emission = new Emission(count.Final, count.Clicks, count.EmittedAt, result.Partition.Value, result.Offset.Value);
                lock (_gate)
                {
                    if (!_windows.TryGetValue(key, out var list))
                    {
                        list = [];
                        _windows[key] = list;
                    }

                    list.Add(emission);
                }
            }
        }
        catch (Exception e) when (e is KafkaException or InvalidOperationException)
        {
            _failure = e;
        }
    }

    private void ThrowIfFailed()
    {
        if (_failure is not null)
        {
            throw new InvalidOperationException("reading clicks.minute failed", _failure);
        }
    }
}
