using System.ComponentModel;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Query;

/// <summary>The query role's HTTP surface: the API, its OpenAPI document and the dashboard.</summary>
public static class QueryEndpoints
{
    public static IEndpointRouteBuilder MapQuery(this IEndpointRouteBuilder app)
    {
        // What a route can answer is declared where it comes from: 401 and 429 by the API-key requirement, 403 by the
        // admin one, 400 for the range by its filter, and the rest by the union each handler returns.
        var api = app.MapGroup("/v1").WithTags("Query").RequireApiKey();

        // A statement past Query:StatementTimeout is cancelled: a 503 the caller can retry, never a 500.
        api.AddEndpointFilter(async (context, next) =>
        {
            try
            {
                return await next(context);
            }
            catch (Exception e) when (QueryTimeoutProblem.IsTimeout(e))
            {
                return new QueryTimeoutProblem();
            }
        });
        api.MapGet("/ads/{adId:id}/clicks", (
                    ClickQueries queries, Caller caller, [Description("The ad's id.")] long adId, [AsParameters] RangeParameters range, CancellationToken ct) =>
                queries.AdClicksAsync(caller, adId, range.Range, ct))
            .WithRange()
            .WithName("AdClicks")
            .WithSummary("Clicks of one ad per bucket")
            .WithDescription("Every bucket of the range in order, salts summed, each marked final or partial. An advertiser's key sees only its own ads (404 for others).");

        api.MapGet("/advertisers/{advertiserId:id}/clicks", (
                    ClickQueries queries, Caller caller,
                    [Description("The advertiser's id.")] long advertiserId,
                    [AsParameters] RangeParameters range,
                    [Description("'ad' adds a series per ad, most clicked first.")] string? breakdown,
                    CancellationToken ct) =>
                queries.AdvertiserClicksAsync(caller, advertiserId, range.Range, breakdown, ct))
            .WithRange()
            .WithName("AdvertiserClicks")
            .WithSummary("Clicks of all of an advertiser's ads per bucket, optionally per ad");

        api.MapGet("/top", (
                    ClickQueries queries, Caller caller,
                    [Description("The last M minutes including the current one: 1m to 60m, or 1h. Default 5m.")] string? window,
                    [Description("How many ads, 1 to 100. Default 10.")] string? limit,
                    [Description("Only this advertiser's ads. An advertiser's key is always limited to its own.")] string? advertiserId,
                    CancellationToken ct) =>
                queries.TopAsync(caller, window, limit, advertiserId, ct))
            .WithName("TopAds")
            .WithSummary("The most clicked ads over the last minutes");

        api.MapGet("/advertisers", (
                    ClickQueries queries, Caller caller,
                    [Description("Only advertisers with a larger id: the next value of the previous page.")] string? after,
                    [Description("How many advertisers, 1 to 1000. Default 100.")] string? limit,
                    CancellationToken ct) =>
                queries.AdvertisersAsync(caller, after, limit, ct))
            .WithName("Advertisers")
            .WithSummary("The advertisers the caller may see (an advertiser's key: itself) in id order, a page at a time");

        api.MapGet("/advertisers/{advertiserId:id}/ads", (
                    ClickQueries queries, Caller caller,
                    [Description("The advertiser's id.")] long advertiserId,
                    [Description("Only ads with a larger id: the next value of the previous page.")] string? after,
                    [Description("How many ads, 1 to 1000. Default 100.")] string? limit,
                    [Description("Only the ads whose id is q or whose URL contains q (case-insensitive), 1 to 256 characters. "
                        + "Each page looks at no more than Query:SearchScanAds (default 10,000) ads, so it may hold fewer than limit, even none, while next is set.")] string? q,
                    CancellationToken ct) =>
                queries.AdsAsync(caller, advertiserId, after, limit, q, ct))
            .WithName("AdvertiserAds")
            .WithSummary("The advertiser's ads in id order, a page at a time, optionally only those matching a search");

        api.MapGet("/reconciliation/runs", (
                    ClickQueries queries, [Description("How many runs, newest first, 1 to 500. Default 50.")] string? last, CancellationToken ct) =>
                queries.ReconciliationRunsAsync(last, ct))
            .RequireAdmin()
            .WithName("ReconciliationRuns")
            .WithSummary("The latest reconciliation runs and what they corrected (admin keys only)");

        // An id that is not one names no ad or advertiser: the same 404 as an unknown id, not the unknown route's.
        api.MapGet("/ads/{adId}/clicks", NotFoundProblem.UnknownAd).ExcludeFromDescription();
        api.MapGet("/advertisers/{advertiserId}/clicks", NotFoundProblem.UnknownAdvertiser).ExcludeFromDescription();
        api.MapGet("/advertisers/{advertiserId}/ads", NotFoundProblem.UnknownAdvertiser).ExcludeFromDescription();

        DashboardAssets.Map(app);

        // Built now, not under the first burst of requests: the Redis connection is made synchronously, and
        // requests queued behind it would starve the thread pool.
        app.ServiceProvider.GetRequiredService<ClickQueries>();
        return app;
    }

    /// <summary>Validates the route's <see cref="RangeParameters"/> before its handler runs; declares the 400 that refuses them.</summary>
    private static RouteHandlerBuilder WithRange(this RouteHandlerBuilder route) =>
        route.AddEndpointFilter(async (context, next) =>
        {
            var services = context.HttpContext.RequestServices;
            var problem = context.Arguments.OfType<RangeParameters>().Single()
                .Validate(services.GetRequiredService<TimeProvider>().GetUtcNow(), services.GetRequiredService<IOptions<QueryOptions>>().Value);
            return problem ?? await next(context);
        }).ProducesProblem(StatusCodes.Status400BadRequest);
}
