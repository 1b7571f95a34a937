using KafkaClicks.Contracts;

namespace KafkaClicks.Sink;

/// <summary>
/// The (ad, salt) keys a writer stored, for the newest minutes it wrote: what tells a minute row that is surely an
/// update from one that is probably new. A row of a trusted minute whose key is not here was never stored by this
/// writer and goes by COPY; if another writer stored it (a previous owner of the partition, this writer before a
/// restart, the reconciler), the COPY fails on the primary key and the minute is no longer trusted: its rows go through
/// the upsert until it leaves the memory. Only minutes of the last <see cref="MaxAge"/> are trusted: TimescaleDB
/// compresses minute chunks after 2 days (migration 002), and no COPY is sent where rows may be compressed. Bounded: at
/// most <see cref="MaxMinutes"/> minutes (the newest) and <see cref="MaxKeys"/> keys; a minute older than those is not
/// trusted, and past the key limit the oldest trusted minute is given up first.
/// </summary>
internal sealed class RecentMinuteKeys
{
    /// <summary>How many of the newest minutes are remembered: the aggregator's open windows and some.</summary>
    public const int MaxMinutes = 16;

    /// <summary>How many keys are remembered at most (about 40 bytes each).</summary>
    public const int MaxKeys = 2_000_000;

    /// <summary>How old a minute may be and still be trusted (by the wall clock).</summary>
    public static readonly TimeSpan MaxAge = TimeSpan.FromDays(1);

    private readonly SortedDictionary<DateTime, HashSet<(long AdId, int Salt)>?> _minutes = [];
    private readonly TimeProvider _time;
    private int _keys;

    public RecentMinuteKeys(TimeProvider? time = null) => _time = time ?? TimeProvider.System;

    /// <summary>
    /// Splits <paramref name="rows"/> into those likely new (a trusted minute, a key never stored here) and the others.
    /// A minute seen for the first time is trusted if it is among the newest remembered.
    /// </summary>
    public (List<MinuteCount> New, List<MinuteCount> Stored) Split(List<MinuteCount> rows)
    {
        var (fresh, stored) = (new List<MinuteCount>(rows.Count), new List<MinuteCount>());
        lock (_minutes)
        {
            foreach (var row in rows)
            {
                var keys = Keys(row.WindowStart);
                (keys is not null && !keys.Contains((row.AdId, row.Salt)) ? fresh : stored).Add(row);
            }
        }

        return (fresh, stored);
    }

    /// <summary>Records that every row of <paramref name="rows"/> is stored.</summary>
    public void Remember(List<MinuteCount> rows)
    {
        lock (_minutes)
        {
            foreach (var row in rows)
            {
                var keys = Keys(row.WindowStart);
                if (keys is null)
                {
                    continue;
                }

                if (keys.Add((row.AdId, row.Salt)) && ++_keys > MaxKeys)
                {
                    // Full: the oldest minute still trusted is forgotten first (it may be this one).
                    Distrust(_minutes.First(m => m.Value is not null).Key);
                }
            }
        }
    }

    /// <summary>Stops trusting the minutes of <paramref name="rows"/>: another writer stored some of their keys.</summary>
    public void Distrust(List<MinuteCount> rows)
    {
        lock (_minutes)
        {
            foreach (var minute in rows.Select(r => r.WindowStart).Distinct())
            {
                Distrust(minute);
            }
        }
    }

    /// <summary>Forgets the keys of a minute and stops trusting it (caller holds the lock).</summary>
    private void Distrust(DateTime minute)
    {
        if (!_minutes.TryGetValue(minute, out var keys) && (keys = Keys(minute)) is null)
        {
            return;
        }

        _keys -= keys?.Count ?? 0;
        _minutes[minute] = null;
    }

    /// <summary>The keys of a trusted minute, null for one that is not (caller holds the lock).</summary>
    private HashSet<(long AdId, int Salt)>? Keys(DateTime minute)
    {
        if (_minutes.TryGetValue(minute, out var keys))
        {
            return keys;
        }

        if (minute < _time.GetUtcNow().UtcDateTime - MaxAge)
        {
            return null;
        }

        if (_minutes.Count >= MaxMinutes)
        {
            var oldest = _minutes.Keys.First();
            if (minute < oldest)
            {
                return null;
            }

            Distrust(oldest);
            _minutes.Remove(oldest);
        }

        keys = [];
        _minutes[minute] = keys;
        return keys;
    }
}
