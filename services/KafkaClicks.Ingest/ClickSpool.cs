using System.Buffers.Binary;
using System.Collections.Concurrent;
using System.Diagnostics.Metrics;
using System.IO.Hashing;
using System.Text;
using System.Threading.Channels;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>Section <c>Ingest:Spool</c>: where clicks wait while the broker is unreachable.</summary>
public sealed class SpoolOptions
{
    /// <summary>
    /// Folder of the spool's segment files; must survive a process restart (a volume in production). One ingest process
    /// at a time: it holds the folder's lock file while it runs, and a second process given the same folder does not start.
    /// </summary>
    public string Directory { get; set; } = Path.Combine(Path.GetTempPath(), "kafkaclicks-spool");

    /// <summary>Most bytes the spool may hold; past it clicks are refused with 503 rather than risking the disk.</summary>
    public long MaxBytes { get; set; } = 1L << 30;

    /// <summary>How often the forwarder tries to drain the spool to Kafka.</summary>
    public TimeSpan ForwardInterval { get; set; } = TimeSpan.FromSeconds(1);

    /// <summary>After a failed produce, clicks go straight to the spool for this long instead of waiting on the broker again.</summary>
    public TimeSpan BrokerDownFor { get; set; } = TimeSpan.FromSeconds(5);

    /// <summary>
    /// How long a click waits for the broker's acknowledgement before it is also written to the spool and answered from
    /// there, while its produce goes on: a slow acknowledgement then costs the user this much, not the broker's tail.
    /// The forwarder sends such a click again only if its own produce fails. At or above <c>Ingest:ProduceTimeout</c>
    /// every click waits for the broker (or the deadline), as without this.
    /// </summary>
    public TimeSpan HedgeAfter { get; set; } = TimeSpan.FromMilliseconds(10);
}

/// <summary>The spool cannot take more clicks (full, or the disk failed).</summary>
public sealed class SpoolUnavailableException : Exception
{
    public SpoolUnavailableException(string message) : base(message) { }

    public SpoolUnavailableException(string message, Exception inner) : base(message, inner) { }

    public SpoolUnavailableException() { }
}

/// <summary>
/// A durable local append-only spool for click events, used when the broker is unreachable, slow past the produce
/// deadline, or slower than <see cref="SpoolOptions.HedgeAfter"/> to acknowledge one click: <see cref="AppendAsync"/>
/// completes only after the record is fsynced (appends that arrive together share one fsync). Records are framed as
/// [length][CRC-32C][payload]; a torn tail left by a crash is detected on reading and skipped without losing the records
/// before it. Segments are sealed and handed to the forwarder in order, and deleted once every record in them was
/// acknowledged by the broker.
/// The spool holds an exclusive lock on its folder (<c>spool.lock</c>) from construction to disposal: another process's
/// forwarder would take this one's open segment for sealed, forward what it held so far and delete it, and every click
/// appended to it afterwards would go to a file no one can read again.
/// </summary>
public sealed partial class ClickSpool : IAsyncDisposable
{
    private const string LockFile = "spool.lock";

    // The errno .NET puts in HResult when a FileShare.None open meets a lock held by another open of the file (EWOULDBLOCK).
    private const int SharingViolation = 11;
    private const string Prefix = "spool-";
    private const string Suffix = ".log";
    private const int HeaderLength = 8;
    private const int MaxRecordLength = 64 * 1024;
    private static readonly Meter Meter = ServiceDefaultsExtensions.CreateMeter("Ingest.Spool");
    private static readonly Counter<long> Spooled = Meter.CreateCounter<long>("kafkaclicks.ingest.spool.appended", "{click}", "Clicks written to the spool.");
    private static readonly Counter<long> Forwarded = Meter.CreateCounter<long>("kafkaclicks.ingest.spool.forwarded", "{click}", "Spooled clicks acknowledged by the broker.");
    private static readonly Counter<long> TornTails = Meter.CreateCounter<long>("kafkaclicks.ingest.spool.torn_tails", "{segment}", "Segments whose tail was torn by a crash.");
    private static readonly Counter<long> Hedged = Meter.CreateCounter<long>(
        "kafkaclicks.ingest.spool.hedged", "{click}", "Clicks answered from the spool because the broker's acknowledgement took longer than Ingest:Spool:HedgeAfter.");
    private static readonly Counter<long> Settled = Meter.CreateCounter<long>(
        "kafkaclicks.ingest.spool.settled", "{click}", "Hedged clicks not forwarded from the spool because their own produce was acknowledged.");

    private readonly SpoolOptions _options;
    private readonly TimeProvider _time;
    private readonly ILogger<ClickSpool> _logger;
    private readonly ConcurrentDictionary<(string ImpressionId, long ClickedAt), Task<bool>> _hedged = new();
    private readonly Channel<Pending> _appends = Channel.CreateUnbounded<Pending>(new UnboundedChannelOptions { SingleReader = true });
    private readonly Lock _gate = new();
    private readonly Task _writer;
    private readonly FileStream _lock;
    private FileStream? _active;
    private string? _activePath;
    private long _sequence;
    private long _bytes;
    private long _brokerDownUntil;

    public ClickSpool(IOptions<IngestOptions> options, TimeProvider time, ILogger<ClickSpool> logger)
    {
        _options = options.Value.Spool;
        _time = time;
        _logger = logger;
        Directory.CreateDirectory(_options.Directory);
        _lock = Lock(_options.Directory);
        try
        {
            var segments = Segments();
            _bytes = segments.Sum(s => new FileInfo(s).Length);
            _sequence = segments.Count == 0 ? 0 : segments.Max(SequenceOf);
        }
        catch
        {
            _lock.Dispose();
            throw;
        }

        Meter.CreateObservableGauge("kafkaclicks.ingest.spool.bytes", () => Interlocked.Read(ref _bytes), "By", "Bytes waiting in the spool.");
        Meter.CreateObservableGauge("kafkaclicks.ingest.spool.age", () => OldestAge().TotalSeconds, "s", "Age of the oldest spooled segment.");
        _writer = Task.Run(WriteLoopAsync);
    }

    /// <summary>True while recent produce failures say the broker is down: clicks go straight to the spool.</summary>
    public bool BrokerLikelyDown => _time.GetUtcNow().ToUnixTimeMilliseconds() < Interlocked.Read(ref _brokerDownUntil);

    /// <summary>Bytes waiting in the spool.</summary>
    public long PendingBytes => Interlocked.Read(ref _bytes);

    public void MarkBrokerDown() =>
        Interlocked.Exchange(ref _brokerDownUntil, (_time.GetUtcNow() + _options.BrokerDownFor).ToUnixTimeMilliseconds());

    public void MarkBrokerUp() => Interlocked.Exchange(ref _brokerDownUntil, 0);

    /// <summary>Appends the click and returns once it is on disk (fsynced).</summary>
    public Task AppendAsync(ClickEvent click)
    {
        var key = Encoding.UTF8.GetBytes(click.ImpressionId);
        var value = ContractCodecs.ClickEvent.Serialize(click);
        var payload = new byte[2 + key.Length + value.Length];
        BinaryPrimitives.WriteUInt16BigEndian(payload, (ushort)key.Length);
        key.CopyTo(payload, 2);
        value.CopyTo(payload, 2 + key.Length);
        var pending = new Pending(payload, new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously));
        if (!_appends.Writer.TryWrite(pending))
        {
            throw new SpoolUnavailableException("the spool is closed");
        }

        return pending.Done.Task;
    }

    /// <summary>
    /// Appends a click whose own produce is still waiting for the broker (<paramref name="acknowledged"/>: true once the
    /// broker acknowledged it, false when it failed; it never throws) and returns once it is on disk. The forwarder sends
    /// the click only if that produce fails; after a restart, which forgets the produce, it sends it again (the
    /// aggregator's and the reconciler's dedupe drop the repeat).
    /// </summary>
    public async Task AppendHedgedAsync(ClickEvent click, Task<bool> acknowledged)
    {
        // Known before the record is on disk: a forwarder that reads it at once must not take it for unacknowledged.
        var key = HedgeKey(click);
        var tracked = _hedged.TryAdd(key, acknowledged);
        try
        {
            await AppendAsync(click);
        }
        catch
        {
            if (tracked)
            {
                _hedged.TryRemove(key, out _);
            }

            throw;
        }

        Hedged.Add(1);
    }

    /// <summary>
    /// For a click read back from a segment: whether the produce of its own, still waiting when it was spooled
    /// (<see cref="AppendHedgedAsync"/>), was acknowledged by the broker; waits for it. False for any other click.
    /// Each hedged click is answered once.
    /// </summary>
    public async Task<bool> AcknowledgedMeanwhileAsync(ClickEvent click)
    {
        if (!_hedged.TryRemove(HedgeKey(click), out var acknowledged) || !await acknowledged)
        {
            return false;
        }

        Settled.Add(1);
        return true;
    }

    // The click time as the record keeps it (timestamp-millis): a click read back from its segment has the same key.
    private static (string, long) HedgeKey(ClickEvent click) => (click.ImpressionId, click.ClickedAt.Ticks / TimeSpan.TicksPerMillisecond);

    /// <summary>Closes the segment being written (if it holds anything) and returns every sealed segment, oldest first.</summary>
    public IReadOnlyList<string> Seal()
    {
        lock (_gate)
        {
            if (_active is not null)
            {
                _active.Dispose();
                _active = null;
                _activePath = null;
            }

            return Segments();
        }
    }

    /// <summary>Reads a sealed segment: its intact records in order, and whether a torn tail was skipped.</summary>
    public static (List<ClickEvent> Clicks, bool Torn) Read(string path)
    {
        var bytes = File.ReadAllBytes(path);
        var clicks = new List<ClickEvent>();
        var position = 0;
        while (position + HeaderLength <= bytes.Length)
        {
            var length = BinaryPrimitives.ReadInt32BigEndian(bytes.AsSpan(position));
            var crc = BinaryPrimitives.ReadUInt32BigEndian(bytes.AsSpan(position + 4));
            if (length <= 2 || length > MaxRecordLength || position + HeaderLength + length > bytes.Length)
            {
                break;
            }

            var payload = bytes.AsSpan(position + HeaderLength, length);
            if (Crc32.HashToUInt32(payload) != crc)
            {
                break;
            }

            var keyLength = BinaryPrimitives.ReadUInt16BigEndian(payload);
            clicks.Add(ContractCodecs.ClickEvent.Deserialize(payload[(2 + keyLength)..]));
            position += HeaderLength + length;
        }

        var torn = position < bytes.Length;
        if (torn)
        {
            TornTails.Add(1);
        }

        return (clicks, torn);
    }

    /// <summary>Deletes a segment whose records were all acknowledged by the broker, <paramref name="forwarded"/> of them from it.</summary>
    public void Forgotten(string segment, int forwarded)
    {
        var length = new FileInfo(segment).Length;
        File.Delete(segment);
        Interlocked.Add(ref _bytes, -length);
        Forwarded.Add(forwarded);
    }

    private async Task WriteLoopAsync()
    {
        var batch = new List<Pending>();
        while (await _appends.Reader.WaitToReadAsync())
        {
            while (batch.Count < 1024 && _appends.Reader.TryRead(out var pending))
            {
                batch.Add(pending);
            }

            try
            {
                Write(batch);
                Spooled.Add(batch.Count);
                foreach (var pending in batch)
                {
                    pending.Done.TrySetResult();
                }
            }
            catch (Exception e) when (e is IOException or UnauthorizedAccessException or SpoolUnavailableException)
            {
                LogWriteFailed(e.Message);
                var failure = e as SpoolUnavailableException ?? new SpoolUnavailableException($"spool write failed: {e.Message}", e);
                foreach (var pending in batch)
                {
                    pending.Done.TrySetException(failure);
                }
            }

            batch.Clear();
        }
    }

    private void Write(List<Pending> batch)
    {
        var size = batch.Sum(p => HeaderLength + p.Payload.Length);
        if (Interlocked.Read(ref _bytes) + size > _options.MaxBytes)
        {
            throw new SpoolUnavailableException($"the spool is full ({_options.MaxBytes:N0} bytes)");
        }

        var buffer = new byte[size];
        var position = 0;
        foreach (var pending in batch)
        {
            BinaryPrimitives.WriteInt32BigEndian(buffer.AsSpan(position), pending.Payload.Length);
            BinaryPrimitives.WriteUInt32BigEndian(buffer.AsSpan(position + 4), Crc32.HashToUInt32(pending.Payload));
            pending.Payload.CopyTo(buffer, position + HeaderLength);
            position += HeaderLength + pending.Payload.Length;
        }

        lock (_gate)
        {
            if (_active is null)
            {
                _sequence++;
                _activePath = Path.Combine(_options.Directory, $"{Prefix}{_time.GetUtcNow().ToUnixTimeMilliseconds():D15}-{_sequence:D9}{Suffix}");
                _active = new FileStream(_activePath, FileMode.CreateNew, FileAccess.Write, FileShare.Read);
            }

            _active.Write(buffer);
            _active.Flush(flushToDisk: true);
        }

        Interlocked.Add(ref _bytes, size);
    }

    /// <summary>
    /// Takes the folder's lock file and checks that it holds (a second open of it must be refused), or throws a
    /// <see cref="KafkaClicksConfigurationException"/> naming the folder.
    /// </summary>
    private static FileStream Lock(string directory)
    {
        var path = Path.Combine(directory, LockFile);
        FileStream stream;
        try
        {
            // FileShare.None is an exclusive advisory lock (flock) on Unix, held until the stream is disposed or the
            // process ends, however it ends: a crashed instance leaves nothing to clean up.
            stream = OpenExclusive(path);
        }
        catch (IOException e) when (e.HResult == SharingViolation)
        {
            throw new KafkaClicksConfigurationException(
                $"Ingest:Spool:Directory {directory} is in use by another ingest process; give every instance a spool folder of its own.", e);
        }
        catch (Exception e) when (e is IOException or UnauthorizedAccessException)
        {
            throw new KafkaClicksConfigurationException($"Ingest:Spool:Directory {directory}: its lock file cannot be opened ({e.Message}).", e);
        }

        try
        {
            // .NET takes the lock only where the file system offers flock and DOTNET_SYSTEM_IO_DISABLEFILELOCKING is
            // unset, and says nothing otherwise: a second open that succeeds means nothing keeps another process out.
            OpenExclusive(path).Dispose();
        }
        catch (IOException e) when (e.HResult == SharingViolation)
        {
            stream.SetLength(0);
            stream.Write(Encoding.ASCII.GetBytes($"{Environment.ProcessId}\n"));
            stream.Flush();
            return stream;
        }
        catch
        {
            stream.Dispose();
            throw;
        }

        stream.Dispose();
        throw new KafkaClicksConfigurationException(
            $"Ingest:Spool:Directory {directory} cannot be locked (file locking is off, DOTNET_SYSTEM_IO_DISABLEFILELOCKING, or not offered by its file system), so nothing would keep a second ingest process off it; give it a local folder.");
    }

    private static FileStream OpenExclusive(string path) => new(path, FileMode.OpenOrCreate, FileAccess.ReadWrite, FileShare.None);

    private List<string> Segments() =>
        [.. Directory.EnumerateFiles(_options.Directory, Prefix + "*" + Suffix)
            .Where(p => p != _activePath)
            .OrderBy(p => Path.GetFileName(p), StringComparer.Ordinal)];

    private static long SequenceOf(string path)
    {
        var name = Path.GetFileNameWithoutExtension(path);
        return long.TryParse(name[(name.LastIndexOf('-') + 1)..], out var sequence) ? sequence : 0;
    }

    private TimeSpan OldestAge()
    {
        var oldest = Directory.EnumerateFiles(_options.Directory, Prefix + "*" + Suffix).Order(StringComparer.Ordinal).FirstOrDefault();
        if (oldest is null || !long.TryParse(Path.GetFileName(oldest).AsSpan(Prefix.Length, 15), out var createdMs))
        {
            return TimeSpan.Zero;
        }

        return _time.GetUtcNow() - DateTimeOffset.FromUnixTimeMilliseconds(createdMs);
    }

    public async ValueTask DisposeAsync()
    {
        try
        {
            _appends.Writer.TryComplete();
            await _writer;
            lock (_gate)
            {
                _active?.Dispose();
                _active = null;
            }
        }
        finally
        {
            await _lock.DisposeAsync();
        }
    }

    [LoggerMessage(EventId = 2201, Level = LogLevel.Error, Message = "Writing to the click spool failed: {Error}")]
    private partial void LogWriteFailed(string error);

    private sealed record Pending(byte[] Payload, TaskCompletionSource Done);
}
