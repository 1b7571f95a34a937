namespace KafkaClicks.Contracts;

/// <summary>
/// The time buckets every role agrees on, in UTC: the stream's 1-minute windows (which minute a click counts in), the
/// hours and days of the rollups. One implementation, so the aggregator, the sink, both reconcilers and the scheduler
/// never disagree about the minute or hour a click belongs to.
/// </summary>
public static class TimeBuckets
{
    /// <summary>The window a click is counted in: one minute, fixed by the product.</summary>
    public static readonly TimeSpan Minute = TimeSpan.FromMinutes(1);

    /// <summary><see cref="Minute"/> in milliseconds, for times kept as Unix milliseconds.</summary>
    public const long MinuteMs = 60_000;

    /// <summary>One hour, the rollups' first step.</summary>
    public static readonly TimeSpan Hour = TimeSpan.FromHours(1);

    /// <summary>The start of the minute holding <paramref name="unixMs"/> (Unix milliseconds, also before 1970).</summary>
    public static long MinuteStartMs(long unixMs) => FloorMs(unixMs, MinuteMs);

    /// <summary>
    /// The start of the <paramref name="unitMs"/>-long bucket holding <paramref name="unixMs"/>, buckets counted from the
    /// Unix epoch (also before 1970).
    /// </summary>
    public static long FloorMs(long unixMs, long unitMs) => unixMs - (((unixMs % unitMs) + unitMs) % unitMs);

    /// <summary>The start of the minute holding <paramref name="at"/> (a UTC time).</summary>
    public static DateTime MinuteOf(DateTime at) => Floor(at, TimeSpan.TicksPerMinute);

    /// <summary>The start of the hour holding <paramref name="at"/> (a UTC time).</summary>
    public static DateTime HourOf(DateTime at) => Floor(at, TimeSpan.TicksPerHour);

    /// <summary><paramref name="at"/> if it starts a minute, else the start of the next minute.</summary>
    public static DateTime CeilingMinute(DateTime at) => Ceiling(at, TimeSpan.TicksPerMinute);

    /// <summary><paramref name="at"/> if it starts an hour, else the start of the next hour.</summary>
    public static DateTime CeilingHour(DateTime at) => Ceiling(at, TimeSpan.TicksPerHour);

    /// <summary><paramref name="at"/> if it starts a UTC day, else the start of the next day.</summary>
    public static DateTime CeilingDay(DateTime at) => Ceiling(at, TimeSpan.TicksPerDay);

    /// <summary>Whether <paramref name="at"/> starts a minute.</summary>
    public static bool IsWholeMinute(DateTime at) => at.Ticks % TimeSpan.TicksPerMinute == 0;

    private static DateTime Floor(DateTime at, long unit) => new(at.Ticks - (at.Ticks % unit), DateTimeKind.Utc);

    private static DateTime Ceiling(DateTime at, long unit) =>
        at.Ticks % unit == 0 ? DateTime.SpecifyKind(at, DateTimeKind.Utc) : Floor(at, unit).AddTicks(unit);
}
