namespace KafkaClicks.Contracts;

/// <summary>
/// Shared codecs for the bundled schemas, reading and writing Avro single-object encoding. Build an
/// <see cref="AvroCodec{T}"/> yourself to add older schema versions or a schema registry lookup.
/// </summary>
public static class ContractCodecs
{
    /// <summary>Codec for <see cref="Contracts.ClickEvent"/> (clicks.raw, clicks.late).</summary>
    public static AvroCodec<ClickEvent> ClickEvent { get; } =
        new([], null, body => ClickEventReader.TryReadBody(body, out var click) ? click.ToClickEvent() : null);

    /// <summary>Codec for <see cref="Contracts.MinuteCount"/> (clicks.minute).</summary>
    public static AvroCodec<MinuteCount> MinuteCount { get; } = new();
}
