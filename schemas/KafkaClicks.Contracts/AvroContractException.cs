namespace KafkaClicks.Contracts;

/// <summary>
/// The one exception the contract codecs throw for bad input or bad records; <see cref="Reason"/> is a bounded
/// value suitable as a metric tag.
/// </summary>
public sealed class AvroContractException : Exception
{
    /// <summary>Creates an exception with a reason and a message.</summary>
    public AvroContractException(AvroContractErrorReason reason, string message)
        : base(message)
    {
        Reason = reason;
    }

    /// <summary>Creates an exception with a reason, a message and the underlying cause.</summary>
    public AvroContractException(AvroContractErrorReason reason, string message, Exception? innerException)
        : base(message, innerException)
    {
        Reason = reason;
    }

    /// <summary>Why decoding or encoding failed.</summary>
    public AvroContractErrorReason Reason { get; }
}
