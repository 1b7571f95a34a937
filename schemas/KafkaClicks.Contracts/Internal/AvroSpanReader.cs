namespace KafkaClicks.Contracts.Internal;

/// <summary>
/// Reads Avro binary primitives from a span without allocating. Every method returns false (and leaves the reader
/// in an unspecified position) on truncated or malformed input instead of throwing, so hand-written fast paths can
/// fall back to the full codec, which then reports the precise reason.
/// </summary>
internal ref struct AvroSpanReader
{
    private readonly ReadOnlySpan<byte> _body;
    private int _position;

    public AvroSpanReader(ReadOnlySpan<byte> body)
    {
        _body = body;
        _position = 0;
    }

    /// <summary>True when every byte was consumed (a complete value has no trailing bytes).</summary>
    public readonly bool AtEnd => _position == _body.Length;

    public bool TryReadLong(out long value) => TryReadVarint(maxBytes: 10, out value);

    public bool TryReadInt(out int value)
    {
        var ok = TryReadVarint(maxBytes: 5, out var wide) && wide is >= int.MinValue and <= int.MaxValue;
        value = (int)wide;
        return ok;
    }

    public bool TryReadBoolean(out bool value)
    {
        value = false;
        if (_position >= _body.Length || _body[_position] > 1)
        {
            return false;
        }

        value = _body[_position++] == 1;
        return true;
    }

    /// <summary>Reads a string or bytes value: a length, then that many bytes (returned as a slice of the input).</summary>
    public bool TryReadBytes(out ReadOnlySpan<byte> value)
    {
        value = default;
        if (!TryReadLong(out var length) || length < 0 || length > _body.Length - _position)
        {
            return false;
        }

        value = _body.Slice(_position, (int)length);
        _position += (int)length;
        return true;
    }

    private bool TryReadVarint(int maxBytes, out long value)
    {
        ulong raw = 0;
        value = 0;
        for (var shift = 0; shift < maxBytes * 7; shift += 7)
        {
            if (_position >= _body.Length)
            {
                return false;
            }

            var b = _body[_position++];
            raw |= (ulong)(b & 0x7F) << shift;
            if ((b & 0x80) == 0)
            {
                value = (long)(raw >> 1) ^ -(long)(raw & 1);
                return true;
            }
        }

        return false;
    }
}
