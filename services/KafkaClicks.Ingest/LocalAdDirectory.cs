using System.Buffers.Binary;
using System.Text;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using RocksDbSharp;

namespace KafkaClicks.Ingest;

/// <summary>Section <c>Ingest:AdDirectory</c>: the local copy of the ads table each ingest instance keeps.</summary>
public sealed class AdDirectoryOptions
{
    /// <summary>
    /// Folder of the copy (RocksDB). Put it on a volume: a process restarted during a PostgreSQL outage then still
    /// routes every ad it knew. Empty: a folder per database under the temp folder. Two processes never share one: a
    /// process that finds the folder in use by another takes the next free sibling (<c>-2</c>, <c>-3</c>, ...).
    /// </summary>
    public string? Path { get; set; }

    /// <summary>How often the copy asks PostgreSQL for ads changed since its last look.</summary>
    public TimeSpan SyncInterval { get; set; } = TimeSpan.FromSeconds(1);
}

/// <summary>
/// The local copy of the ads table: ad id to <see cref="AdRoute"/>, kept in RocksDB so that it survives a restart,
/// followed by <see cref="AdDirectorySync"/>. Reads are point lookups of a few microseconds; nothing is held in
/// memory beyond RocksDB's own caches, whatever the number of ads. Thread-safe.
/// </summary>
public sealed partial class LocalAdDirectory : IDisposable
{
    // Ad keys are 8 bytes (the id, big-endian); the cursor's key is 9, so it never collides with an ad.
    private static readonly byte[] CursorKey = "\u00ffcursor!"u8.ToArray();
    private readonly ILogger<LocalAdDirectory> _logger;
    // Lookups share the store (RocksDB reads are thread-safe); only a reload, which frees it, waits for them and keeps
    // them out. A plain lock here made every click's lookup wait for the others.
    private readonly ReaderWriterLockSlim _reopen = new(LockRecursionPolicy.NoRecursion);
    private RocksDb _db;
    private volatile bool _loaded;

    public LocalAdDirectory(IOptions<IngestOptions> options, Npgsql.NpgsqlDataSource dataSource, ILogger<LocalAdDirectory> logger)
    {
        _logger = logger;
        var configured = options.Value.AdDirectory.Path;
        var basePath = string.IsNullOrWhiteSpace(configured)
            ? System.IO.Path.Combine(System.IO.Path.GetTempPath(), "kafkaclicks-ad-directory", DatabaseName(dataSource.ConnectionString))
            : configured;
        (_db, Path) = OpenFree(basePath);
        (Origin, Cursor) = ReadCursor(_db);
        _loaded = Cursor is not null;
        LogOpened(Path, _loaded ? "with a copy to follow on" : "empty: the first sync copies the table");
    }

    /// <summary>The folder in use.</summary>
    public string Path { get; }

    /// <summary>True once the whole table has been copied at least once: a lookup that misses here is not in the table as of the last sync.</summary>
    public bool Loaded => _loaded;

    /// <summary>Every transaction before this id had been applied at the last sync (PostgreSQL xid8, as text); null before the first copy.</summary>
    public string? Cursor { get; private set; }

    /// <summary>The database the copy was made from (its <c>database_identity</c>); null before the first copy.</summary>
    public string? Origin { get; private set; }

    /// <summary>The ad's route as of the last sync, or null when the copy does not have it.</summary>
    public AdRoute? Find(long adId)
    {
        if (!_loaded)
        {
            // Only while the first copy is being made (the one time the store is replaced): nothing to read yet.
            return null;
        }

        byte[]? value;
        _reopen.EnterReadLock();
        try
        {
            // Under the lock only so that a reload (a copy of another database) never frees the store mid-read.
            value = _loaded ? _db.Get(Key(adId)) : null;
        }
        finally
        {
            _reopen.ExitReadLock();
        }

        if (value is null || value.Length < 8)
        {
            return null;
        }

        var location = value.Length == 8 ? null : Encoding.UTF8.GetString(value, 8, value.Length - 8);
        return new AdRoute(adId, BinaryPrimitives.ReadInt64BigEndian(value), location);
    }

    /// <summary>Replaces the whole copy with <paramref name="routes"/> (a full load) of the database <paramref name="origin"/>, then records <paramref name="cursor"/>.</summary>
    public async Task<long> ReplaceAsync(IAsyncEnumerable<AdRoute> routes, string origin, string cursor, CancellationToken cancellationToken)
    {
        _reopen.EnterWriteLock();
        try
        {
            _loaded = false;
            _db.Dispose();
            Directory.Delete(Path, recursive: true);
            _db = Open(Path);
        }
        finally
        {
            _reopen.ExitWriteLock();
        }

        long count = 0;
        var batch = new WriteBatch();
        try
        {
            await foreach (var route in routes.WithCancellation(cancellationToken))
            {
                batch.Put(Key(route.AdId), Value(route));
                if (++count % 10_000 == 0)
                {
                    _db.Write(batch);
                    batch.Dispose();
                    batch = new WriteBatch();
                }
            }

            batch.Put(CursorKey, Encoding.ASCII.GetBytes($"{origin}/{cursor}"));
            _db.Write(batch);
        }
        finally
        {
            batch.Dispose();
        }

        (Origin, Cursor) = (origin, cursor);
        _loaded = true;
        return count;
    }

    /// <summary>Applies one sync's changes atomically with its new cursor: removals first, then the ads as they are now.</summary>
    public void Apply(IReadOnlyCollection<long> removed, IReadOnlyCollection<AdRoute> current, string cursor)
    {
        using var batch = new WriteBatch();
        foreach (var adId in removed)
        {
            batch.Delete(Key(adId));
        }

        foreach (var route in current)
        {
            batch.Put(Key(route.AdId), Value(route));
        }

        batch.Put(CursorKey, Encoding.ASCII.GetBytes($"{Origin}/{cursor}"));
        _db.Write(batch);
        Cursor = cursor;
    }

    public void Dispose()
    {
        // A lookup still running finishes first; one after this finds nothing instead of a freed store.
        _reopen.EnterWriteLock();
        try
        {
            _loaded = false;
            _db.Dispose();
        }
        finally
        {
            _reopen.ExitWriteLock();
        }
    }

    private static byte[] Key(long adId)
    {
        var key = new byte[8];
        BinaryPrimitives.WriteInt64BigEndian(key, adId);
        return key;
    }

    private static byte[] Value(AdRoute route)
    {
        var location = route.Location is null ? 0 : Encoding.UTF8.GetByteCount(route.Location);
        var value = new byte[8 + location];
        BinaryPrimitives.WriteInt64BigEndian(value, route.AdvertiserId);
        if (route.Location is not null)
        {
            Encoding.UTF8.GetBytes(route.Location, value.AsSpan(8));
        }

        return value;
    }

    private static (string? Origin, string? Cursor) ReadCursor(RocksDb db)
    {
        var text = db.Get(CursorKey) is { } bytes ? Encoding.ASCII.GetString(bytes) : null;
        var slash = text?.LastIndexOf('/') ?? -1;
        return slash > 0 ? (text![..slash], text[(slash + 1)..]) : (null, null);
    }

    private static RocksDb Open(string path)
    {
        Directory.CreateDirectory(path);
        var options = new DbOptions().SetCreateIfMissing(true).SetCompression(Compression.Lz4);
        return RocksDb.Open(options, path);
    }

    /// <summary>Opens <paramref name="basePath"/>, or when another process holds it, the first free of its siblings.</summary>
    private static (RocksDb Db, string Path) OpenFree(string basePath)
    {
        for (var attempt = 1; ; attempt++)
        {
            var path = attempt == 1 ? basePath : $"{basePath}-{attempt}";
            try
            {
                return (Open(path), path);
            }
            catch (RocksDbException e) when (attempt < 16 && e.Message.Contains("lock", StringComparison.OrdinalIgnoreCase))
            {
                // Held by another ingest process on this machine: try the next sibling.
            }
        }
    }

    /// <summary>A folder name for the database a connection string points at (host, port and database; no credentials).</summary>
    private static string DatabaseName(string connectionString)
    {
        var builder = new Npgsql.NpgsqlConnectionStringBuilder(connectionString);
        var name = $"{builder.Host}-{builder.Port}-{builder.Database ?? builder.Username}";
        return string.Concat(name.Select(c => char.IsAsciiLetterOrDigit(c) || c is '-' or '_' or '.' ? c : '_'));
    }

    [LoggerMessage(EventId = 1020, Level = LogLevel.Information, Message = "Ad directory at {Path}: {State}")]
    private partial void LogOpened(string path, string state);
}
