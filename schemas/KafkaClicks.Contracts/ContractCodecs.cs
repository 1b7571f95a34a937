namespace KafkaClicks.Contracts;

/// <summary>
/// Shared codecs for the bundled schemas, reading and writing Avro single-object encoding; each also reads the
/// previous versions bundled in schemas/previous/. Build an <see cref="AvroCodec{T}"/> yourself to add a schema
/// registry lookup.
/// </summary>
public static class ContractCodecs
{
    /// <summary>Codec for <see cref="Contracts.ClickEvent"/> (clicks.raw, clicks.late).</summary>
    public static AvroCodec<ClickEvent> ClickEvent { get; } =
        new(ContractSchemas.PreviousVersions(ContractSchemas.ClickEvent.Fullname), null, body => ClickEventReader.TryReadBody(body, out var click) ? click.ToClickEvent() : null);

    /// <summary>
    /// Codec for <see cref="Contracts.MinuteCount"/> (clicks.minute). Also reads the schema's previous versions, so the
    /// counts an aggregator of an earlier version left on the topic still reach the database after an upgrade.
    /// </summary>
    public static AvroCodec<MinuteCount> MinuteCount { get; } =
        new(ContractSchemas.PreviousVersions(ContractSchemas.MinuteCount.Fullname), writerSchemaById: null);

    /// <summary>
    /// Codec for <see cref="Contracts.FinalProgress"/>, the aggregator's progress markers, which share clicks.minute with
    /// the minute counts: <see cref="AvroCodec{T}.Reads"/> tells a marker from a count by its fingerprint.
    /// </summary>
    public static AvroCodec<FinalProgress> FinalProgress { get; } = new([], writerSchemaById: null);
}
