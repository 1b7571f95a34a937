using System.Globalization;
using System.Text.Json;
using System.Text.Json.Serialization;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Query;

/// <summary>Answer of GET /v1/ads/{adId}/clicks.</summary>
public sealed record AdClicksResponse(
    long AdId, string Granularity, DateTimeOffset From, DateTimeOffset To, DateTimeOffset? CompleteThrough, long Total, IReadOnlyList<ClickPoint> Points);

[JsonSerializable(typeof(AdClicksResponse))]
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
internal sealed partial class QueryJsonContext : JsonSerializerContext;

/// <summary>The query role's HTTP surface.</summary>
public static class QueryEndpoints
{
    public static IEndpointRouteBuilder MapQuery(this IEndpointRouteBuilder app)
    {
        app.MapGet("/v1/ads/{adId}/clicks", AdClicksAsync).WithName("AdClicks").WithTags("Query");
        return app;
    }

    private static async Task<IResult> AdClicksAsync(
        string adId, string? from, string? to, string? granularity, HttpRequest request,
        ApiKeyAuthenticator auth, ClickSeriesStore store, IOptions<QueryOptions> options, TimeProvider time, CancellationToken ct)
    {
        var caller = await auth.AuthenticateAsync(request, ct);
        if (caller is null)
        {
            return Problems.Problem(401, "unauthenticated", "An API key is required (Authorization: Bearer <key>).");
        }

        if (!long.TryParse(adId, NumberStyles.None, CultureInfo.InvariantCulture, out var id))
        {
            return Problems.Problem(404, "unknown-ad", "No such ad.");
        }

        var range = QueryRange.Parse(from, to, granularity, time.GetUtcNow(), options.Value.MaxPoints);
        if (range.Problem is not null)
        {
            return range.Problem;
        }

        var owner = await store.AdOwnerAsync(id, ct);
        if (owner is null || !caller.MaySee(owner.Value))
        {
            // 404, not 403: another advertiser's ad ids cannot be probed.
            return Problems.Problem(404, "unknown-ad", "No such ad.");
        }

        var points = await store.AdSeriesAsync(id, range.From, range.To, range.Bucket, ct);
        var completeThrough = await store.CompleteThroughAsync(ct);
        return Results.Json(
            new AdClicksResponse(id, range.GranularityName, range.From, range.To, completeThrough, points.Sum(p => p.Clicks), points),
            QueryJsonContext.Default.AdClicksResponse);
    }
}

/// <summary>A validated [from, to) range with its bucket size; or the problem that explains why it is not valid.</summary>
public sealed record QueryRange(DateTimeOffset From, DateTimeOffset To, TimeSpan Bucket, string GranularityName, IResult? Problem)
{
    private static readonly QueryRange Invalid = new(default, default, default, "", null);

    /// <summary>Parses ISO-8601 instants (UTC assumed when no offset is given); defaults to the last hour by minute.</summary>
    public static QueryRange Parse(string? from, string? to, string? granularity, DateTimeOffset now, int maxPoints)
    {
        var name = granularity ?? "1m";
        if (!Granularity.TryParse(name, out var bucket))
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-granularity",
                $"granularity must be one of {string.Join(", ", Granularity.Names)}.") };
        }

        DateTimeOffset end = now, start;
        if (to is not null && !TryParseInstant(to, out end))
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-time", "'to' is not an ISO-8601 instant.") };
        }

        start = end - TimeSpan.FromHours(1);
        if (from is not null && !TryParseInstant(from, out start))
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-time", "'from' is not an ISO-8601 instant.") };
        }

        if (start >= end)
        {
            return Invalid with { Problem = Problems.Problem(400, "invalid-range", "'from' must be before 'to'.") };
        }

        if ((end - start) / bucket > maxPoints)
        {
            return Invalid with { Problem = Problems.Problem(400, "range-too-large",
                $"The range holds more than {maxPoints} points at granularity {name}; use a coarser granularity or a shorter range.") };
        }

        return new QueryRange(start, end, bucket, name, null);
    }

    private static bool TryParseInstant(string text, out DateTimeOffset value) =>
        DateTimeOffset.TryParse(text, CultureInfo.InvariantCulture, DateTimeStyles.AssumeUniversal | DateTimeStyles.AdjustToUniversal, out value);
}
