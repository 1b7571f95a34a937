namespace KafkaClicks.Contracts;

/// <summary>
/// The consumer group ids of every role and tool, in one place: an operator granting Kafka ACLs, or reading lag per
/// group, finds them here. The aggregator's is its Streamiz application id, which also prefixes its internal topics.
/// </summary>
public static class ConsumerGroups
{
    /// <summary>The aggregator (default of <c>Aggregator:ApplicationId</c>).</summary>
    public const string Aggregator = "kafkaclicks-aggregator";

    /// <summary>The sink (default of <c>Sink:GroupId</c>).</summary>
    public const string Sink = "kafkaclicks-sink";

    /// <summary>Recounts of clicks.raw by the reconciler and <c>kafkaclicks reconcile</c> (assigned partitions, no commits).</summary>
    public const string Reconciler = "kafkaclicks-reconciler";

    /// <summary>The reconciler role's follower of clicks.late.</summary>
    public const string LateClicks = "kafkaclicks-reconciler-late";

    /// <summary>Offset lookups that plan which part of clicks.raw a recount reads (assigned partitions, no commits).</summary>
    public const string LogRanges = "kafkaclicks-log-ranges";

    /// <summary><c>kafkaclicks replay</c> (assigned partitions, no commits).</summary>
    public const string Replay = "kafkaclicks-replay";

    /// <summary><c>kafkaclicks topics</c> and <c>lag</c>: offset and watermark lookups (assigned partitions, no commits).</summary>
    public const string Cli = "kafkaclicks-cli";
}

/// <summary>Defaults that more than one role reads and that must agree when the roles share their configuration.</summary>
public static class SharedDefaults
{
    /// <summary>How long an impression can be clicked and counted (<c>Impressions:Lifetime</c>, see <see cref="ImpressionOptions"/>).</summary>
    public static readonly TimeSpan ImpressionLifetime = TimeSpan.FromHours(1);

    /// <summary>How long minute counts are kept (<c>Sink:MinuteRetention</c>; the query API refuses ranges needing older minutes).</summary>
    public static readonly TimeSpan MinuteRetention = TimeSpan.FromDays(30);

    /// <summary>How long hourly and daily rollups are kept (<c>Sink:RollupRetention</c>; the query API refuses older ranges).</summary>
    public static readonly TimeSpan RollupRetention = TimeSpan.FromDays(400);
}
