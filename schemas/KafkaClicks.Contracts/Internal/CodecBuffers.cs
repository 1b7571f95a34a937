using Avro.IO;

namespace KafkaClicks.Contracts.Internal;

/// <summary>
/// Per-thread scratch streams with their Avro encoder and decoder, so that encoding and decoding allocate only
/// the result. Codec calls never nest on one thread, so one pair per thread suffices.
/// </summary>
internal static class CodecBuffers
{
    // A rare huge message must not pin its buffer to the thread for ever.
    private const int MaxRetainedCapacity = 64 * 1024;

    [ThreadStatic]
    private static WriteBuffer? t_write;

    [ThreadStatic]
    private static ReadBuffer? t_read;

    public static WriteBuffer RentWriter()
    {
        var buffer = t_write ??= new WriteBuffer();
        buffer.Stream.SetLength(0);
        return buffer;
    }

    public static ReadBuffer RentReader(ReadOnlySpan<byte> body)
    {
        var buffer = t_read ??= new ReadBuffer();
        buffer.Stream.SetLength(0);
        buffer.Stream.Write(body);
        buffer.Stream.Position = 0;
        return buffer;
    }

    public static void Return(WriteBuffer buffer)
    {
        if (buffer.Stream.Capacity > MaxRetainedCapacity)
        {
            t_write = null;
        }
    }

    public static void Return(ReadBuffer buffer)
    {
        if (buffer.Stream.Capacity > MaxRetainedCapacity)
        {
            t_read = null;
        }
    }

    internal sealed class WriteBuffer
    {
        public WriteBuffer()
        {
            Stream = new MemoryStream(256);
            Encoder = new BinaryEncoder(Stream);
        }

        public MemoryStream Stream { get; }

        public BinaryEncoder Encoder { get; }
    }

    internal sealed class ReadBuffer
    {
        public ReadBuffer()
        {
            Stream = new MemoryStream(256);
            Decoder = new BinaryDecoder(Stream);
        }

        public MemoryStream Stream { get; }

        public BinaryDecoder Decoder { get; }
    }
}
