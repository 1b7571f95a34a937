namespace KafkaClicks.Reconciler;

/// <summary>
/// A temporary file of fixed-size records, unlinked as soon as it is created (its handle keeps it), so nothing is left on
/// disk when the process ends, however it ends. Appended to by any number of writers, each under the file's lock.
/// </summary>
internal sealed class SpillFile : IDisposable
{
    private const int ReadBytes = 1 << 20;
    private readonly FileStream _file;

    public SpillFile(string directory, int recordSize)
    {
        RecordSize = recordSize;
        var path = Path.Combine(directory, $"kafkaclicks-reconcile-{Guid.NewGuid():N}.tmp");
        _file = new FileStream(path, FileMode.CreateNew, FileAccess.ReadWrite, FileShare.Delete, bufferSize: 0);
        File.Delete(path);
    }

    public int RecordSize { get; }

    public long Records { get; private set; }

    public void Append(byte[] buffer, int records)
    {
        lock (_file)
        {
            _file.Write(buffer, 0, records * RecordSize);
            Records += records;
        }
    }

    /// <summary>Hands every record to <paramref name="each"/>, in the order appended.</summary>
    public void ReadAll(Action<ReadOnlySpan<byte>> each)
    {
        var buffer = new byte[ReadBytes - ReadBytes % RecordSize];
        _file.Position = 0;
        int read;
        var carried = 0;
        while ((read = _file.Read(buffer, carried, buffer.Length - carried)) > 0)
        {
            var available = carried + read;
            var whole = available / RecordSize;
            for (var i = 0; i < whole; i++)
            {
                each(buffer.AsSpan(i * RecordSize, RecordSize));
            }

            carried = available - whole * RecordSize;
            buffer.AsSpan(whole * RecordSize, carried).CopyTo(buffer);
        }
    }

    public void Dispose() => _file.Dispose();
}

/// <summary>
/// One writer's buffers in front of a set of <see cref="SpillFile"/>s (one buffer per file): <see cref="Next"/> gives the
/// slot for a record bound for a file, and a full buffer is appended to its file. Not thread-safe: one per thread.
/// </summary>
internal sealed class SpillWriter
{
    private readonly SpillFile[] _targets;
    private readonly byte[][] _buffers;
    private readonly int[] _filled;
    private readonly int _recordsPerBuffer;

    public SpillWriter(SpillFile[] targets, int bufferBytes)
    {
        _targets = targets;
        var recordSize = targets.Length > 0 ? targets[0].RecordSize : 1;
        _recordsPerBuffer = Math.Max(1, bufferBytes / recordSize);
        _buffers = targets.Select(_ => new byte[_recordsPerBuffer * recordSize]).ToArray();
        _filled = new int[targets.Length];
    }

    public int Targets => _targets.Length;

    /// <summary>The slot of the next record for file <paramref name="target"/>; fill it before the next call.</summary>
    public Span<byte> Next(int target)
    {
        if (_filled[target] == _recordsPerBuffer)
        {
            _targets[target].Append(_buffers[target], _filled[target]);
            _filled[target] = 0;
        }

        var recordSize = _targets[target].RecordSize;
        return _buffers[target].AsSpan(_filled[target]++ * recordSize, recordSize);
    }

    /// <summary>Appends what is buffered; call once the writer is done.</summary>
    public void Flush()
    {
        for (var target = 0; target < _targets.Length; target++)
        {
            if (_filled[target] > 0)
            {
                _targets[target].Append(_buffers[target], _filled[target]);
                _filled[target] = 0;
            }
        }
    }
}
