using System.Buffers.Binary;
using KafkaClicks.Contracts;
using Npgsql;

namespace KafkaClicks.Reconciler;

/// <summary>
/// The per-salt counts ad_clicks_minute holds for a reconciliation's range, grouped by ad as its recount groups them
/// (<see cref="RawLogRecount.AdGroupOf"/>): with one group they are held in memory; with more, each group's rows go to a
/// file of its own (28 bytes a row) and <see cref="Group"/> loads one at a time, so memory does not grow with the range.
/// </summary>
internal sealed class StoredWindows : IDisposable
{
    private const int RecordSize = 28;
    private const int BufferBytes = 16 * 1024;

    private readonly SpillFile[] _files;
    private readonly Dictionary<(long AdId, DateTime Minute, int Salt), long> _windows = [];

    private StoredWindows(int adGroups, string spillDirectory)
    {
        _files = adGroups == 1 ? [] : Enumerable.Range(0, adGroups).Select(_ => new SpillFile(spillDirectory, RecordSize)).ToArray();
    }

    /// <summary>Reads the range's rows (every ad, or the request's one) into <paramref name="adGroups"/> groups.</summary>
    public static async Task<StoredWindows> ReadAsync(NpgsqlDataSource dataSource, ReconcileRequest request, int adGroups, string spillDirectory,
        CancellationToken cancellationToken)
    {
        var stored = new StoredWindows(adGroups, spillDirectory);
        try
        {
            await using var command = dataSource.CreateCommand($"""
                SELECT ad_id, minute, salt, clicks FROM {Tables.AdClicksMinute}
                WHERE minute >= $1 AND minute < $2 AND ($3::bigint IS NULL OR ad_id = $3)
                """);
            command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = request.From });
            command.Parameters.Add(new NpgsqlParameter<DateTime> { TypedValue = request.To });
            command.Parameters.Add(new NpgsqlParameter { Value = (object?)request.AdId ?? DBNull.Value, NpgsqlDbType = NpgsqlTypes.NpgsqlDbType.Bigint });
            var writer = new SpillWriter(stored._files, BufferBytes);
            await using var reader = await command.ExecuteReaderAsync(cancellationToken);
            while (await reader.ReadAsync(cancellationToken))
            {
                var adId = reader.GetInt64(0);
                var minute = DateTime.SpecifyKind(reader.GetDateTime(1), DateTimeKind.Utc);
                var salt = reader.GetInt16(2);
                var clicks = reader.GetInt64(3);
                if (stored._files.Length == 0)
                {
                    stored._windows[(adId, minute, salt)] = clicks;
                    continue;
                }

                var record = writer.Next(RawLogRecount.AdGroupOf(adId, stored._files.Length));
                BinaryPrimitives.WriteInt64LittleEndian(record, adId);
                BinaryPrimitives.WriteInt64LittleEndian(record[8..], minute.Ticks);
                BinaryPrimitives.WriteInt64LittleEndian(record[16..], clicks);
                BinaryPrimitives.WriteInt32LittleEndian(record[24..], salt);
            }

            writer.Flush();
            return stored;
        }
        catch
        {
            stored.Dispose();
            throw;
        }
    }

    /// <summary>One group's rows; the dictionary is reused, holding them only until the next group is asked for.</summary>
    public IReadOnlyDictionary<(long AdId, DateTime Minute, int Salt), long> Group(int adGroup)
    {
        if (_files.Length == 0)
        {
            return _windows;
        }

        _windows.Clear();
        _files[adGroup].ReadAll(record => _windows[(
            BinaryPrimitives.ReadInt64LittleEndian(record),
            new DateTime(BinaryPrimitives.ReadInt64LittleEndian(record[8..]), DateTimeKind.Utc),
            BinaryPrimitives.ReadInt32LittleEndian(record[24..]))] = BinaryPrimitives.ReadInt64LittleEndian(record[16..]));
        _files[adGroup].Dispose();
        return _windows;
    }

    public void Dispose()
    {
        foreach (var file in _files)
        {
            file.Dispose();
        }
    }
}
