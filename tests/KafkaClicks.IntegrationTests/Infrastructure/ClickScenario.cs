using System.Diagnostics;
using Confluent.Kafka;
using KafkaClicks.Contracts;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// Produces raw clicks to clicks.raw as ingest would (key impressionId, partition by ad and salt) and keeps what
/// the aggregator must make of them: the distinct impressions of every (adId, salt, minute) window.
/// Deterministic (fixed seed): a few thousand ads, a few hot ads salted 8 ways, a share of repeated impressions
/// (repeats may reach back into an earlier slice, so across a crash), event time rising steadily through the slices.
/// </summary>
public sealed class ClickScenario : IDisposable
{
    /// <summary>Ads from here on are the closing clicks' ads, not part of the expectation.</summary>
    public const long ClosingAdBase = 1_000_000_000L;

    /// <summary>Ads from here on are the late clicks' ads (<see cref="ProduceLateClicks"/>), not part of the expectation.</summary>
    public const long LateAdBase = 2_000_000_000L;

    private const int HotAds = 10;
    private const int Salts = 8;
    private const double HotShare = 0.10;
    private const double RepeatShare = 0.03;
    private static readonly long WindowMs = (long)TimeSpan.FromMinutes(1).TotalMilliseconds;

    private readonly Random _random = new(4711);
    private readonly ClickEvent[] _recent = new ClickEvent[4096];
    private readonly Dictionary<WindowKey, long> _expected = [];
    private readonly IProducer<string, ClickEvent> _producer;
    private readonly int _partitions;
    private readonly int _ads;
    private readonly int _totalClicks;
    private readonly TimeSpan _eventTimeSpan;
    private readonly DateTime _start;
    private readonly Action<DeliveryReport<string, ClickEvent>> _onDelivered;
    private int _produced;
    private int _fresh;
    private readonly string _topic;
    private int _failed;
    private string? _firstFailure;

    public ClickScenario(string bootstrapServers, string topic, int partitions, int ads, int totalClicks, TimeSpan eventTimeSpan)
    {
        _topic = topic;
        _partitions = partitions;
        _ads = ads;
        _totalClicks = totalClicks;
        _eventTimeSpan = eventTimeSpan;
        var now = DateTime.UtcNow;
        _start = new DateTime(now.Year, now.Month, now.Day, now.Hour, 0, 0, DateTimeKind.Utc).AddHours(-2);
        _producer = RawClicks.Producer(bootstrapServers);
        _onDelivered = report =>
        {
            if (report.Error.IsError && Interlocked.Increment(ref _failed) == 1)
            {
                _firstFailure = $"{report.TopicPartition}: {report.Error.Code} ({report.Error.Reason})";
            }
        };
    }

    /// <summary>Clicks produced so far, repeats included (the closing clicks not).</summary>
    public int Produced => _produced;

    /// <summary>Distinct impressions so far.</summary>
    public int DistinctImpressions => _fresh;

    /// <summary>What every final must say: distinct impressions per window.</summary>
    public IReadOnlyDictionary<WindowKey, long> Expected => _expected;

    /// <summary>Produces the next <paramref name="count"/> clicks at about <paramref name="perSecond"/>, then flushes.</summary>
    public void ProduceSlice(int count, int perSecond, CancellationToken cancellationToken)
    {
        var clock = Stopwatch.StartNew();
        for (var n = 0; n < count; n++)
        {
            if (n % 1000 == 0)
            {
                cancellationToken.ThrowIfCancellationRequested();
                var due = TimeSpan.FromSeconds((double)n / perSecond);
                if (due > clock.Elapsed)
                {
                    Thread.Sleep(due - clock.Elapsed);
                }
            }

            Send(NextClick());
        }

        Flush(cancellationToken);
    }

    /// <summary>One click per partition an hour past everything else, so every partition's stream time closes every window.</summary>
    public void ProduceClosingClicks(CancellationToken cancellationToken)
    {
        for (var partition = 0; partition < _partitions; partition++)
        {
            var adId = ClosingAdBase + partition;
            while (ClickPartitioning.PartitionFor(adId, 0, _partitions) != partition)
            {
                adId += _partitions;
            }

            var at = _start.Add(_eventTimeSpan).AddHours(1);
            Send(new ClickEvent
            {
                ImpressionId = "closing-" + partition.ToString(System.Globalization.CultureInfo.InvariantCulture),
                AdId = adId,
                AdvertiserId = 1,
                ClickedAt = at,
                ImpressionAt = at,
            });
        }

        Flush(cancellationToken);
    }

    /// <summary>
    /// <paramref name="count"/> clicks of fresh impressions for the run's first minute, on ads of their own: late once
    /// stream time has passed that minute's end and grace, so not counted by the stream but forwarded to clicks.late.
    /// Returns their impression ids.
    /// </summary>
    public IReadOnlyList<string> ProduceLateClicks(int count, CancellationToken cancellationToken)
    {
        var impressions = new List<string>();
        for (var n = 0; n < count; n++)
        {
            var impression = "late-" + Guid.NewGuid().ToString("N");
            var adId = LateAdBase + n;
            Send(new ClickEvent
            {
                ImpressionId = impression,
                AdId = adId,
                AdvertiserId = 1,
                ClickedAt = _start.AddSeconds(10),
                ImpressionAt = _start,
            });
            impressions.Add(impression);
        }

        Flush(cancellationToken);
        return impressions;
    }

    public void Dispose() => _producer.Dispose();

    private ClickEvent NextClick()
    {
        var i = _produced++;
        if (i > _recent.Length && _random.NextDouble() < RepeatShare)
        {
            return _recent[_random.Next(_recent.Length)];
        }

        var hot = _random.NextDouble() < HotShare;
        var adId = hot ? 1 + _random.Next(HotAds) : 1 + HotAds + _random.Next(_ads - HotAds);
        var impression = Guid.CreateVersion7().ToString("N");

        // Event time rises with the click's place in the whole run, jittered by up to 5 s (well inside the grace).
        var clickedAt = _start.AddMilliseconds(((double)i / _totalClicks * _eventTimeSpan.TotalMilliseconds) + _random.Next(5_000));
        var click = new ClickEvent
        {
            ImpressionId = impression,
            AdId = adId,
            AdvertiserId = adId % 100,
            Salt = hot ? ClickPartitioning.SaltFor(impression, Salts) : 0,
            ClickedAt = clickedAt,
            ImpressionAt = clickedAt.AddSeconds(-5),
        };
        _recent[_fresh % _recent.Length] = click;
        _fresh++;
        var unixMs = (long)(clickedAt - DateTime.UnixEpoch).TotalMilliseconds;
        var key = new WindowKey(adId, click.Salt, unixMs - (unixMs % WindowMs));
        _expected[key] = _expected.GetValueOrDefault(key) + 1;
        return click;
    }

    private void Send(ClickEvent click)
    {
        var partition = ClickPartitioning.PartitionFor(click.AdId, click.Salt, _partitions);
        while (true)
        {
            try
            {
                _producer.Produce(new TopicPartition(_topic, partition), new Message<string, ClickEvent> { Key = click.ImpressionId, Value = click }, _onDelivered);
                return;
            }
            catch (ProduceException<string, ClickEvent> e) when (e.Error.Code == ErrorCode.Local_QueueFull)
            {
                _producer.Poll(TimeSpan.FromMilliseconds(20));
            }
        }
    }

    private void Flush(CancellationToken cancellationToken)
    {
        _producer.Flush(cancellationToken);
        if (_producer.Flush(TimeSpan.Zero) != 0)
        {
            throw new InvalidOperationException("clicks were still in flight after the flush");
        }

        if (Volatile.Read(ref _failed) > 0)
        {
            throw new InvalidOperationException($"{_failed} clicks were not delivered to clicks.raw, the first at {_firstFailure}");
        }
    }
}

/// <summary>One counting window: ad, salt, window start in Unix milliseconds.</summary>
public readonly record struct WindowKey(long AdId, int Salt, long WindowStartMs)
{
    public override string ToString() =>
        $"ad {AdId} salt {Salt} {DateTime.UnixEpoch.AddMilliseconds(WindowStartMs):yyyy-MM-dd HH:mm}";
}
