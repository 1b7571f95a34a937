using System.Globalization;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// Durations as the command line takes them: a number and a unit (<c>500ms</c>, <c>60s</c>, <c>5m</c>, <c>1h</c>,
/// <c>1d</c>), several of them largest first (<c>1h30m</c>), or the TimeSpan form (<c>00:01:00</c>, <c>1.00:00:00</c>).
/// A leading <c>-</c> makes it negative, so a caller can say "must be positive" rather than "not a duration".
/// </summary>
public static class Durations
{
    /// <summary>What a caller is told when a duration is not accepted.</summary>
    public const string Expected = "a duration such as 500ms, 60s, 5m, 1h, 1d, 1h30m or 00:01:00";

    // Largest first: each unit may appear once, in this order.
    private static readonly (string Suffix, long Ticks)[] Units =
    [
        ("d", TimeSpan.TicksPerDay), ("h", TimeSpan.TicksPerHour), ("m", TimeSpan.TicksPerMinute),
        ("s", TimeSpan.TicksPerSecond), ("ms", TimeSpan.TicksPerMillisecond),
    ];

    /// <summary>Parses <paramref name="text"/>; false when it is neither form or does not fit a TimeSpan.</summary>
    public static bool TryParse(string? text, out TimeSpan value)
    {
        value = default;
        text = text?.Trim();
        if (string.IsNullOrEmpty(text))
        {
            return false;
        }

        if (text.Contains(':', StringComparison.Ordinal))
        {
            return TimeSpan.TryParseExact(text, "c", CultureInfo.InvariantCulture, out value);
        }

        var negative = text[0] == '-';
        var rest = negative ? text[1..] : text;
        if (rest.Length == 0)
        {
            return false;
        }

        var last = -1;
        long ticks = 0;
        while (rest.Length > 0)
        {
            var digits = 0;
            while (digits < rest.Length && char.IsAsciiDigit(rest[digits]))
            {
                digits++;
            }

            if (digits == 0 || !long.TryParse(rest.AsSpan(0, digits), NumberStyles.None, CultureInfo.InvariantCulture, out var count))
            {
                return false;
            }

            rest = rest[digits..];
            // "ms" before "m": the longest suffix that matches.
            var unit = rest.StartsWith("ms", StringComparison.Ordinal) ? Units.Length - 1
                : Array.FindIndex(Units, u => rest.StartsWith(u.Suffix, StringComparison.Ordinal));
            if (unit <= last)
            {
                return false;
            }

            last = unit;
            rest = rest[Units[unit].Suffix.Length..];
            try
            {
                ticks = checked(ticks + (count * Units[unit].Ticks));
            }
            catch (OverflowException)
            {
                return false;
            }
        }

        value = TimeSpan.FromTicks(negative ? -ticks : ticks);
        return true;
    }
}
