using System.ComponentModel;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.DependencyInjection;

namespace KafkaClicks.Query;

/// <summary>The query role's HTTP surface: the API, its OpenAPI document and the dashboard.</summary>
public static class QueryEndpoints
{
    private const string FromText = "Start (ISO-8601; UTC when no offset), widened down to a whole bucket. Default: 60 buckets before to.";
    private const string ToText = "End, exclusive (ISO-8601; UTC when no offset), widened up to a whole bucket. Default: now.";
    private const string GranularityText = "Bucket size: 1m (default), 5m, 15m, 1h or 1d.";
    private const string TzText = "IANA time zone whose local midnights start day buckets (granularity=1d only). Default: UTC.";

    public static IEndpointRouteBuilder MapQuery(this IEndpointRouteBuilder app)
    {
        var api = app.MapGroup("/v1").WithTags("Query");
        api.MapGet("/ads/{adId}/clicks", (
                    HttpRequest request, ClickQueries queries, CancellationToken ct,
                    [Description("The ad's id.")] string adId,
                    [Description(FromText)] string? from,
                    [Description(ToText)] string? to,
                    [Description(GranularityText)] string? granularity,
                    [Description(TzText)] string? tz) =>
                queries.AdClicksAsync(request, adId, from, to, granularity, tz, ct))
            .WithName("AdClicks")
            .WithSummary("Clicks of one ad per bucket")
            .WithDescription("Every bucket of the range in order, salts summed, each marked final or partial. An advertiser's key sees only its own ads (404 for others).")
            .Produces<AdClicksResponse>()
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(429).ProducesProblem(404);

        api.MapGet("/advertisers/{advertiserId}/clicks", (
                    HttpRequest request, ClickQueries queries, CancellationToken ct,
                    [Description("The advertiser's id.")] string advertiserId,
                    [Description(FromText)] string? from,
                    [Description(ToText)] string? to,
                    [Description(GranularityText)] string? granularity,
                    [Description(TzText)] string? tz,
                    [Description("'ad' adds a series per ad, most clicked first.")] string? breakdown) =>
                queries.AdvertiserClicksAsync(request, advertiserId, from, to, granularity, tz, breakdown, ct))
            .WithName("AdvertiserClicks")
            .WithSummary("Clicks of all of an advertiser's ads per bucket, optionally per ad")
            .Produces<AdvertiserClicksResponse>()
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(429).ProducesProblem(404);

        api.MapGet("/top", (
                    HttpRequest request, ClickQueries queries, CancellationToken ct,
                    [Description("The last M minutes including the current one: 1m to 60m, or 1h. Default 5m.")] string? window,
                    [Description("How many ads, 1 to 100. Default 10.")] string? limit,
                    [Description("Only this advertiser's ads. An advertiser's key is always limited to its own.")] string? advertiserId) =>
                queries.TopAsync(request, window, limit, advertiserId, ct))
            .WithName("TopAds")
            .WithSummary("The most clicked ads over the last minutes")
            .Produces<TopAdsResponse>()
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(429).ProducesProblem(404);

        api.MapGet("/advertisers", (HttpRequest request, ClickQueries queries, CancellationToken ct) => queries.AdvertisersAsync(request, ct))
            .WithName("Advertisers")
            .WithSummary("The advertisers the caller may see (an advertiser's key: itself)")
            .Produces<AdvertisersResponse>()
            .ProducesProblem(401).ProducesProblem(429);

        api.MapGet("/advertisers/{advertiserId}/ads", (
                    HttpRequest request, ClickQueries queries, CancellationToken ct,
                    [Description("The advertiser's id.")] string advertiserId,
                    [Description("Only ads with a larger id: the next value of the previous page.")] string? after,
                    [Description("How many ads, 1 to 1000. Default 100.")] string? limit) =>
                queries.AdsAsync(request, advertiserId, after, limit, ct))
            .WithName("AdvertiserAds")
            .WithSummary("The advertiser's ads in id order, a page at a time")
            .Produces<AdsResponse>()
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(429).ProducesProblem(404);

        api.MapGet("/reconciliation/runs", (
                    HttpRequest request, ClickQueries queries, CancellationToken ct,
                    [Description("How many runs, newest first, 1 to 500. Default 50.")] string? last) =>
                queries.ReconciliationRunsAsync(request, last, ct))
            .WithName("ReconciliationRuns")
            .WithSummary("The latest reconciliation runs and what they corrected (admin keys only)")
            .Produces<ReconciliationRunsResponse>()
            .ProducesProblem(400).ProducesProblem(401).ProducesProblem(429).ProducesProblem(403);

        DashboardAssets.Map(app);

        // Built now, not under the first burst of requests: the Redis connection is made synchronously, and
        // requests queued behind it would starve the thread pool.
        app.ServiceProvider.GetRequiredService<ClickQueries>();
        return app;
    }
}
