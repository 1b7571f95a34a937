using System.Globalization;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Http;

namespace KafkaClicks.Query;

/// <summary>
/// A validated [from, to) range with its bucket size, widened to whole buckets (from down, to up); or the problem
/// that explains why it is not valid. Buckets are aligned on UTC (2000-01-01T00:00Z as origin), except day buckets
/// with a time zone, which start at local midnights of <see cref="TimeZone"/>.
/// </summary>
public sealed record QueryRange(DateTimeOffset From, DateTimeOffset To, TimeSpan Bucket, string GranularityName, IResult? Problem)
{
    /// <summary>Where every UTC-aligned bucket is counted from (the same origin as the SQL date_bin calls).</summary>
    public static readonly DateTimeOffset Origin = new(2000, 1, 1, 0, 0, 0, TimeSpan.Zero);

    private const int DefaultBuckets = 60;
    private static readonly QueryRange Invalid = new(default, default, default, "", null);

    /// <summary>The zone whose local midnights start day buckets; null for UTC.</summary>
    public TimeZoneInfo? TimeZone { get; init; }

    /// <summary>The IANA name of <see cref="TimeZone"/>, "UTC" when none.</summary>
    public string TimeZoneName => TimeZone?.Id ?? "UTC";

    /// <summary>Parses a range in UTC; see <see cref="Parse(string?, string?, string?, string?, DateTimeOffset, int)"/>.</summary>
    public static QueryRange Parse(string? from, string? to, string? granularity, DateTimeOffset now, int maxPoints) =>
        Parse(from, to, granularity, null, now, maxPoints);

    /// <summary>
    /// Parses ISO-8601 instants (UTC assumed when no offset is given). Defaults: <c>to</c> now, <c>from</c> 60 buckets
    /// before <c>to</c> (the last hour by minute). <paramref name="tz"/> (an IANA name) is accepted for day buckets only.
    /// </summary>
    public static QueryRange Parse(string? from, string? to, string? granularity, string? tz, DateTimeOffset now, int maxPoints)
    {
        var name = granularity ?? "1m";
        if (!Granularity.TryParse(name, out var bucket))
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-granularity",
                $"granularity must be one of {string.Join(", ", Granularity.Names)}.") };
        }

        TimeZoneInfo? zone = null;
        if (tz is not null)
        {
            if (bucket != TimeSpan.FromDays(1))
            {
                return Invalid with { Problem = Problems.Problem(400, "invalid-tz",
                    "tz applies to day buckets only (granularity=1d); other buckets are aligned on UTC.") };
            }

            if (!TimeZoneInfo.TryFindSystemTimeZoneById(tz, out zone))
            {
                return Invalid with { Problem = Problems.Problem(400, "invalid-tz", $"'{tz}' is not an IANA time zone name (for example Europe/Paris).") };
            }

            zone = zone.BaseUtcOffset == TimeSpan.Zero && zone.GetAdjustmentRules().Length == 0 ? null : zone;
        }

        DateTimeOffset end = now, start;
        if (to is not null && !Instants.TryParse(to, out end))
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-time", $"'to' is not {Instants.Expected}.") };
        }

        start = end - (bucket * DefaultBuckets);
        if (from is not null && !Instants.TryParse(from, out start))
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-time", $"'from' is not {Instants.Expected}.") };
        }

        if (start >= end)
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-range", "'from' must be before 'to'.") };
        }

        if ((end - start) / bucket > maxPoints + 1)
        {
            return RangeTooLarge(maxPoints, name);
        }

        var range = zone is null
            ? new QueryRange(Floor(start, bucket), Ceiling(end, bucket), bucket, name, null)
            : new QueryRange(LocalMidnightAtOrBefore(start, zone), LocalMidnightAtOrAfter(end, zone), bucket, name, null) { TimeZone = zone };
        return range.BucketCount > maxPoints ? RangeTooLarge(maxPoints, name) : range;
    }

    /// <summary>How many buckets the range holds.</summary>
    public int BucketCount => TimeZone is null
        ? (int)((To - From) / Bucket)
        : LocalDate(To, TimeZone).DayNumber - LocalDate(From, TimeZone).DayNumber;

    /// <summary>The first bucket start at or after <paramref name="earliest"/> (<see cref="From"/> when that is later).</summary>
    public DateTimeOffset FirstBucketFrom(DateTimeOffset earliest) =>
        From >= earliest ? From : TimeZone is null ? Ceiling(earliest, Bucket) : LocalMidnightAtOrAfter(earliest, TimeZone);

    /// <summary>The start of every bucket, in order; the last one ends at <see cref="To"/>.</summary>
    public DateTimeOffset[] BucketStarts()
    {
        var starts = new DateTimeOffset[BucketCount];
        if (TimeZone is null)
        {
            for (var i = 0; i < starts.Length; i++)
            {
                starts[i] = From + (Bucket * i);
            }

            return starts;
        }

        var first = LocalDate(From, TimeZone);
        for (var i = 0; i < starts.Length; i++)
        {
            starts[i] = Midnight(first.AddDays(i), TimeZone);
        }

        return starts;
    }

    /// <summary>The start of the bucket that holds <paramref name="t"/> (t at or after <see cref="From"/>), UTC-aligned buckets only.</summary>
    public static DateTimeOffset Floor(DateTimeOffset t, TimeSpan bucket)
    {
        // Rounded towards minus infinity, so instants before the origin are widened down too.
        var buckets = Math.DivRem((t - Origin).Ticks, bucket.Ticks, out var remainder) - (remainder < 0 ? 1 : 0);
        return Origin + TimeSpan.FromTicks(buckets * bucket.Ticks);
    }

    private static DateTimeOffset Ceiling(DateTimeOffset t, TimeSpan bucket)
    {
        var floor = Floor(t, bucket);
        return floor == t ? t : floor + bucket;
    }

    private static QueryRange RangeTooLarge(int maxPoints, string name) =>
        Invalid with { Problem = Problems.Problem(400, "range-too-large",
            $"The range holds more than {maxPoints} points at granularity {name}; use a coarser granularity or a shorter range.") };

    private static DateOnly LocalDate(DateTimeOffset t, TimeZoneInfo zone) => DateOnly.FromDateTime(TimeZoneInfo.ConvertTime(t, zone).DateTime);

    private static DateTimeOffset LocalMidnightAtOrBefore(DateTimeOffset t, TimeZoneInfo zone)
    {
        var midnight = Midnight(LocalDate(t, zone), zone);
        return midnight <= t ? midnight : Midnight(LocalDate(t, zone).AddDays(-1), zone);
    }

    private static DateTimeOffset LocalMidnightAtOrAfter(DateTimeOffset t, TimeZoneInfo zone)
    {
        var midnight = LocalMidnightAtOrBefore(t, zone);
        return midnight == t ? t : Midnight(LocalDate(midnight, zone).AddDays(1), zone);
    }

    /// <summary>The instant a local day starts; where midnight is skipped by a clock change, the first local time that exists.</summary>
    private static DateTimeOffset Midnight(DateOnly date, TimeZoneInfo zone)
    {
        var local = date.ToDateTime(TimeOnly.MinValue, DateTimeKind.Unspecified);
        while (zone.IsInvalidTime(local))
        {
            local = local.AddMinutes(15);
        }

        return new DateTimeOffset(TimeZoneInfo.ConvertTimeToUtc(local, zone), TimeSpan.Zero);
    }
}
