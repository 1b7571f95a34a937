namespace KafkaClicks.Contracts;

/// <summary>Why bytes could not be decoded into, or a record could not be encoded as, a contract type.</summary>
public enum AvroContractErrorReason
{
    /// <summary>The input ends before the header or the Avro body is complete (includes empty input).</summary>
    Truncated,

    /// <summary>The input starts with neither the single-object marker <c>C3 01</c> nor the Confluent magic byte <c>00</c>.</summary>
    UnknownMagic,

    /// <summary>Single-object encoding whose writer-schema fingerprint is neither bundled nor registered with the codec.</summary>
    UnknownFingerprint,

    /// <summary>Confluent wire format whose schema id the lookup does not know, or the codec has no lookup.</summary>
    UnknownSchemaId,

    /// <summary>The Avro body does not match the writer schema (bad lengths, bad union or enum index, bad boolean, trailing bytes).</summary>
    Corrupt,

    /// <summary>The writer schema cannot be resolved against the reader schema (e.g. a new field without a default).</summary>
    IncompatibleSchema,

    /// <summary>A record to serialize violates its schema (e.g. a null string field).</summary>
    InvalidRecord,

    /// <summary>A Kafka message has a null value (a tombstone); contract topics never carry them.</summary>
    NullValue,
}
