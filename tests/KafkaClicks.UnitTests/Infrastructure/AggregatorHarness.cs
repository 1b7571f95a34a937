using KafkaClicks.Contracts;
using KafkaClicks.Topology;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Mock;
using Streamiz.Kafka.Net.SerDes;

namespace KafkaClicks.UnitTests.Infrastructure;

/// <summary>One TopologyTestDriver over <see cref="ClickAggregationTopology"/> with its own application id and state folder.</summary>
internal sealed class AggregatorHarness : IDisposable
{
    /// <summary>12:00:00.000 UTC, the start of the first window in most tests.</summary>
    public static readonly DateTime Noon = new(2025, 1, 15, 12, 0, 0, DateTimeKind.Utc);

    private readonly string _stateDir;
    private readonly StreamConfig _config;
    private readonly TopologyTestDriver _driver;
    private readonly TestInputTopic<string, ClickEvent> _raw;
    private readonly TestOutputTopic<string, byte[]> _minute;
    private readonly TestOutputTopic<string, ClickEvent> _late;
    private readonly Dictionary<string, DateTime> _issuedAt = [];

    /// <param name="options">The aggregator's options (defaults otherwise).</param>
    /// <param name="minutePartitions">The clicks.minute partition count the stream starts with (each marker goes to all).</param>
    public AggregatorHarness(AggregationOptions? options = null, int minutePartitions = 1)
    {
        var id = Guid.NewGuid().ToString("N");
        _stateDir = Path.Combine(Path.GetTempPath(), "kafkaclicks-topology-tests", id);
        Options = options ?? new AggregationOptions();
        Options.ApplicationId = $"topology-test-{id}";
        Options.StateDirectory = _stateDir;

        _config = new StreamConfig
        {
            ApplicationId = Options.ApplicationId,
            StateDir = _stateDir,
            BootstrapServers = "mock:9092",
        };

        Markers = new FinalProgressMarkers(rawPartitions: 1, minutePartitions);
        _driver = new TopologyTestDriver(ClickAggregationTopology.Build(Options, Markers), _config, TopologyTestDriver.Mode.SYNC_TASK);
        _raw = _driver.CreateInputTopic(Topics.ClicksRaw, new StringSerDes(), new AvroSerDes<ClickEvent>(ContractCodecs.ClickEvent));
        _minute = _driver.CreateOutputTopic(Topics.ClicksMinute, TimeSpan.FromMilliseconds(20), new StringSerDes(), new ByteArraySerDes());
        _late = _driver.CreateOutputTopic(Topics.ClicksLate, TimeSpan.FromMilliseconds(20), new StringSerDes(), new AvroSerDes<ClickEvent>(ContractCodecs.ClickEvent));
    }

    public AggregationOptions Options { get; }

    /// <summary>What the stream tells its tasks about progress markers.</summary>
    public FinalProgressMarkers Markers { get; }

    /// <summary>A click of <paramref name="impressionId"/> issued at <paramref name="impressionAt"/> (default: 5 s before the click).</summary>
    public static ClickEvent NewClick(string impressionId, long adId, DateTime clickedAt, int salt = 0, DateTime? impressionAt = null) => new()
    {
        ImpressionId = impressionId,
        AdId = adId,
        AdvertiserId = 1000 + adId,
        Salt = salt,
        ClickedAt = clickedAt,
        ImpressionAt = impressionAt ?? clickedAt.AddSeconds(-5),
        DedupeChecked = true,
        IngestInstance = "ingest-test",
    };

    /// <summary>
    /// Pipes a click keyed by its impressionId; the record timestamp is deliberately unrelated to clickedAt unless given.
    /// Every click of an impression carries the same issue time, as the impression's token does: the one given with its
    /// first click, or 5 s before that click.
    /// </summary>
    public ClickEvent Click(string impressionId, long adId, DateTime clickedAt, int salt = 0, DateTime? recordTimestamp = null, DateTime? impressionAt = null)
    {
        if (!_issuedAt.TryGetValue(impressionId, out var issuedAt))
        {
            _issuedAt[impressionId] = issuedAt = impressionAt ?? clickedAt.AddSeconds(-5);
        }

        var click = NewClick(impressionId, adId, clickedAt, salt, issuedAt);
        _raw.PipeInput(impressionId, click, recordTimestamp ?? new DateTime(2030, 6, 1, 0, 0, 0, DateTimeKind.Utc), null);
        return click;
    }

    /// <summary>Advances wall-clock time by one emit interval, firing the emit punctuation once.</summary>
    public void Tick() => _driver.AdvanceWallClockTime(Options.EmitInterval);

    /// <summary>The minute counts on clicks.minute since the last read, without the progress markers between them.</summary>
    public List<(string Key, MinuteCount Value)> ReadMinute() =>
        ReadMinuteTopic().Where(r => r.Count is not null).Select(r => (r.Key, r.Count!)).ToList();

    /// <summary>Everything on clicks.minute since the last read, in order: minute counts and progress markers.</summary>
    public List<(string Key, MinuteCount? Count, FinalProgress? Progress)> ReadMinuteTopic() =>
        _minute.ReadKeyValueList().Select(r => ContractCodecs.FinalProgress.Reads(r.Message.Value)
            ? (r.Message.Key, (MinuteCount?)null, ContractCodecs.FinalProgress.Deserialize(r.Message.Value))
            : (r.Message.Key, ContractCodecs.MinuteCount.Deserialize(r.Message.Value), (FinalProgress?)null)).ToList();

    public List<(string Key, ClickEvent Value)> ReadLate() =>
        _late.ReadKeyValueList().Select(r => (r.Message.Key, r.Message.Value)).ToList();

    /// <summary>Tick, then read clicks.minute sorted by (adId, salt, windowStart) as comparable tuples.</summary>
    public List<Emitted> TickAndRead()
    {
        Tick();
        return Sorted(ReadMinute());
    }

    public static List<Emitted> Sorted(IEnumerable<(string Key, MinuteCount Value)> records) =>
        records
            .Select(r => new Emitted(r.Key, r.Value.AdId, r.Value.Salt, r.Value.WindowStart.ToUniversalTime(), r.Value.Clicks, r.Value.Final))
            .OrderBy(e => e.AdId).ThenBy(e => e.Salt).ThenBy(e => e.WindowStart).ThenBy(e => e.Final)
            .ToList();

    public void Dispose()
    {
        try
        {
            _driver.Dispose();
        }
        finally
        {
            if (Directory.Exists(_stateDir))
            {
                Directory.Delete(_stateDir, recursive: true);
            }
        }
    }
}

/// <summary>A clicks.minute record reduced to what the tests compare (EmittedAt is wall clock and not compared).</summary>
internal sealed record Emitted(string Key, long AdId, int Salt, DateTime WindowStart, long Clicks, bool Final)
{
    public static Emitted Of(long adId, DateTime windowStart, long clicks, bool final, int salt = 0) =>
        new(adId.ToString(System.Globalization.CultureInfo.InvariantCulture), adId, salt, windowStart, clicks, final);
}
