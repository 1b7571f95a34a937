using System.Globalization;
using KafkaClicks.Query;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.HttpResults;
using Microsoft.AspNetCore.Mvc;

namespace KafkaClicks.UnitTests.Query;

public class QueryRangeTests
{
    private static readonly DateTimeOffset Now = DateTimeOffset.Parse("2026-11-29T12:30:00Z", CultureInfo.InvariantCulture);

    [Fact]
    public void Defaults_to_the_last_hour_by_minute()
    {
        var range = QueryRange.Parse(null, null, null, Now, 10_080);
        Assert.Null(range.Problem);
        Assert.Equal(Now.AddHours(-1), range.From);
        Assert.Equal(Now, range.To);
        Assert.Equal(TimeSpan.FromMinutes(1), range.Bucket);
    }

    [Theory]
    [InlineData("1m", 1)]
    [InlineData("5m", 5)]
    [InlineData("15m", 15)]
    [InlineData("1h", 60)]
    [InlineData("1d", 1440)]
    public void Knows_every_granularity(string name, int minutes) =>
        Assert.Equal(TimeSpan.FromMinutes(minutes), QueryRange.Parse("2026-11-28T00:00:00Z", "2026-11-29T00:00:00Z", name, Now, 10_080).Bucket);

    [Fact]
    public void Instants_without_offset_are_utc()
    {
        var range = QueryRange.Parse("2026-11-29T10:00:00", "2026-11-29T11:00:00", "1m", Now, 10_080);
        Assert.Equal(TimeSpan.Zero, range.From.Offset);
        Assert.Equal(10, range.From.Hour);
    }

    [Theory]
    [InlineData(null, null, "2m", "invalid-granularity")]
    [InlineData("yesterday", null, "1m", "invalid-time")]
    [InlineData(null, "soon", "1m", "invalid-time")]
    [InlineData("2026-11-29T12:00:00Z", "2026-11-29T11:00:00Z", "1m", "invalid-range")]
    [InlineData("2026-11-29T12:00:00Z", "2026-11-29T12:00:00Z", "1m", "invalid-range")]
    [InlineData("2026-01-01T00:00:00Z", "2026-11-29T00:00:00Z", "1m", "range-too-large")]
    [InlineData("0001-01-01T00:00:00Z", "0001-01-01T00:30:00Z", "1m", "invalid-time")]
    [InlineData("9999-12-31T23:00:00Z", "9999-12-31T23:59:30Z", "1m", "invalid-time")]
    [InlineData(null, "9999-12-31T23:59:30Z", "1m", "invalid-time")]
    [InlineData(null, "0001-01-01T00:00:00Z", "1d", "invalid-time")]
    [InlineData("5/1/2026", "2026-11-29T00:00:00Z", "1d", "invalid-time")]
    [InlineData("2026-11-29T10:00:00Z", "Sunday, 29 November 2026 11:00", "1m", "invalid-time")]
    public void Bad_parameters_get_a_problem_with_a_reason(string? from, string? to, string granularity, string reason)
    {
        var range = QueryRange.Parse(from, to, granularity, Now, 10_080);
        var problem = Assert.IsType<ProblemHttpResult>(range.Problem);
        Assert.Equal(StatusCodes.Status400BadRequest, problem.StatusCode);
        Assert.Equal("https://kafkaclicks.dev/problems/" + reason, problem.ProblemDetails.Type);
    }

    [Theory]
    [InlineData("2026-11-29", "2026-11-29T00:00:00Z")]
    [InlineData("2026-11-29T10:00Z", "2026-11-29T10:00:00Z")]
    [InlineData("2026-11-29T10:00:00", "2026-11-29T10:00:00Z")]
    [InlineData("2026-11-29T10:00:00.250Z", "2026-11-29T10:00:00.25Z")]
    [InlineData("2026-11-29T11:00:00+01:00", "2026-11-29T10:00:00Z")]
    [InlineData("2026-11-29 10:00:00Z", "2026-11-29T10:00:00Z")]
    [InlineData("2026-11-29t10:00:00.123456789z", "2026-11-29T10:00:00.1234567Z")]
    public void Iso_8601_instants_are_read_in_every_usual_form(string text, string utc)
    {
        Assert.True(KafkaClicks.ServiceDefaults.Instants.TryParse(text, out var value));
        Assert.Equal(DateTimeOffset.Parse(utc, CultureInfo.InvariantCulture), value);
        Assert.Equal(TimeSpan.Zero, value.Offset);
    }

    [Fact]
    public void Ranges_are_widened_down_before_the_bucket_origin_too()
    {
        var floor = QueryRange.Floor(DateTimeOffset.Parse("1999-12-31T23:30:00Z", CultureInfo.InvariantCulture), TimeSpan.FromHours(1));
        Assert.Equal(DateTimeOffset.Parse("1999-12-31T23:00:00Z", CultureInfo.InvariantCulture), floor);

        // The default start of a day-bucket range ending early in 2000 lies before the origin.
        var range = QueryRange.Parse(null, "2000-01-02T00:00:00Z", "1d", Now, 10_080);
        Assert.Null(range.Problem);
        Assert.Equal(DateTimeOffset.Parse("1999-11-03T00:00:00Z", CultureInfo.InvariantCulture), range.From);
    }

    [Fact]
    public void A_week_by_hour_is_allowed() =>
        Assert.Null(QueryRange.Parse("2026-11-22T00:00:00Z", "2026-11-29T00:00:00Z", "1h", Now, 10_080).Problem);

    [Fact]
    public void Problem_details_is_the_mvc_type() =>
        Assert.IsAssignableFrom<ProblemDetails>(((ProblemHttpResult)QueryRange.Parse(null, null, "x", Now, 1).Problem!).ProblemDetails);
}
