using System.ComponentModel;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Mvc;

namespace KafkaClicks.Query;

/// <summary>
/// The range parameters of the series routes (<c>[AsParameters]</c>), validated by an endpoint filter before the
/// handler runs (<see cref="QueryEndpoints"/>): the handler reads the checked <see cref="Range"/>.
/// </summary>
public sealed class RangeParameters
{
    private QueryRange? _range;

    [FromQuery(Name = "from")]
    [Description("Start (ISO-8601; UTC when no offset), widened down to a whole bucket. Default: 60 buckets before to.")]
    public string? From { get; set; }

    [FromQuery(Name = "to")]
    [Description("End, exclusive (ISO-8601; UTC when no offset), widened up to a whole bucket. Default: now.")]
    public string? To { get; set; }

    [FromQuery(Name = "granularity")]
    [Description("Bucket size: 1m (default), 5m, 15m, 1h or 1d.")]
    public string? Granularity { get; set; }

    [FromQuery(Name = "tz")]
    [Description("IANA time zone whose local midnights start day buckets (granularity=1d only). Default: UTC.")]
    public string? Tz { get; set; }

    /// <summary>The valid range, within what the database keeps.</summary>
    public QueryRange Range => _range ?? throw new InvalidOperationException("The range was not validated: the route has no range filter.");

    /// <summary>
    /// Parses the range and checks that the database keeps it: the problem (400, with its reason) when it does not,
    /// else null and <see cref="Range"/> is set.
    /// </summary>
    public IResult? Validate(DateTimeOffset now, QueryOptions options)
    {
        var range = QueryRange.Parse(From, To, Granularity, Tz, now, options.MaxPoints);
        var problem = range.Problem;
        if (problem is null)
        {
            (range, problem) = WithinRetention(range, startGiven: From is not null, now, options);
        }

        _range = problem is null ? range : null;
        return problem;
    }

    /// <summary>
    /// The range, if the database still keeps the rows it is read from. A default start (no <c>from</c>) is moved up
    /// to the first bucket it keeps; a start asked for that is older is a problem, which would otherwise be answered as
    /// zeros marked final.
    /// </summary>
    private static (QueryRange Range, IResult? Problem) WithinRetention(QueryRange range, bool startGiven, DateTimeOffset now, QueryOptions options)
    {
        var minutes = ClickSeriesStore.RowUnit(range, range.BucketStarts()) < TimeSpan.FromHours(1);
        var kept = minutes ? options.MinuteRetention : options.RollupRetention;
        var first = range.FirstBucketFrom(now - kept);
        if (first == range.From)
        {
            return (range, null);
        }

        if (!startGiven && first < range.To)
        {
            return (range with { From = first }, null);
        }

        var what = !minutes ? "Hourly and daily counts are"
            : range.Bucket < TimeSpan.FromHours(1) ? "Counts finer than an hour are"
            : $"Day buckets in {range.TimeZoneName} start inside an hour, so they are summed from minute counts, which are";
        var hint = !minutes ? "" : range.Bucket < TimeSpan.FromHours(1) ? " Use granularity 1h or 1d for older ranges." : " Ask in UTC or a whole-hour zone for older days.";
        return (range, Problems.Problem(400, "beyond-retention",
            $"{what} kept for {kept.TotalDays:0.##} days: the range must start at or after {first:O}.{hint}"));
    }
}
