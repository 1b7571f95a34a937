using System.Text.Json;
using System.Text.Json.Serialization;

namespace KafkaClicks.Query;

/// <summary>Answer of GET /v1/ads/{adId}/clicks.</summary>
/// <param name="AdId">The ad.</param>
/// <param name="Granularity">Bucket size: 1m, 5m, 15m, 1h or 1d.</param>
/// <param name="Tz">The IANA zone whose local midnights start day buckets; UTC otherwise.</param>
/// <param name="From">Start of the first bucket (UTC), the requested from widened to a whole bucket.</param>
/// <param name="To">End of the last bucket (UTC), the requested to widened to a whole bucket.</param>
/// <param name="CompleteThrough">Every minute before this instant has its final count; null when no sink reported lately.</param>
/// <param name="Final">Whether every bucket is final (the range ends at or before completeThrough).</param>
/// <param name="Total">Sum of the points.</param>
/// <param name="Points">Every bucket in order, zero when nothing was counted.</param>
public sealed record AdClicksResponse(
    long AdId, string Granularity, string Tz, DateTimeOffset From, DateTimeOffset To, DateTimeOffset? CompleteThrough, bool Final, long Total,
    IReadOnlyList<ClickPoint> Points);

/// <summary>Answer of GET /v1/advertisers/{id}/clicks: the advertiser's ads summed, and per ad with breakdown=ad.</summary>
/// <param name="AdvertiserId">The advertiser.</param>
/// <param name="Granularity">Bucket size: 1m, 5m, 15m, 1h or 1d.</param>
/// <param name="Tz">The IANA zone whose local midnights start day buckets; UTC otherwise.</param>
/// <param name="From">Start of the first bucket (UTC).</param>
/// <param name="To">End of the last bucket (UTC).</param>
/// <param name="CompleteThrough">Every minute before this instant has its final count; null when no sink reported lately.</param>
/// <param name="Final">Whether every bucket is final.</param>
/// <param name="Total">Sum of the points.</param>
/// <param name="Points">Every bucket in order, all the advertiser's ads summed.</param>
/// <param name="Ads">With breakdown=ad: each ad's series, most clicked first; absent otherwise.</param>
public sealed record AdvertiserClicksResponse(
    long AdvertiserId, string Granularity, string Tz, DateTimeOffset From, DateTimeOffset To, DateTimeOffset? CompleteThrough, bool Final, long Total,
    IReadOnlyList<ClickPoint> Points, [property: JsonIgnore(Condition = JsonIgnoreCondition.WhenWritingNull)] IReadOnlyList<AdSeries>? Ads);

/// <summary>One ad's series in a breakdown.</summary>
public sealed record AdSeries(long AdId, long Total, IReadOnlyList<ClickPoint> Points);

/// <summary>Answer of GET /v1/top.</summary>
/// <param name="Window">The window asked for, e.g. 5m.</param>
/// <param name="AdvertiserId">The advertiser the ranking is limited to; null for every advertiser.</param>
/// <param name="From">Start of the window (UTC, whole minute).</param>
/// <param name="To">End of the window: the end of the current minute, so the ranking includes the counts still partial.</param>
/// <param name="CompleteThrough">Every minute before this instant has its final count.</param>
/// <param name="Final">Whether the whole window is final.</param>
/// <param name="Ads">Most clicked first (ties by ad id), at most limit.</param>
public sealed record TopAdsResponse(
    string Window, long? AdvertiserId, DateTimeOffset From, DateTimeOffset To, DateTimeOffset? CompleteThrough, bool Final, IReadOnlyList<TopAd> Ads);

/// <summary>Answer of GET /v1/advertisers: one page of the advertisers the caller may see, in id order.</summary>
/// <param name="Next">Pass as <c>after</c> for the next page; null on the last page.</param>
public sealed record AdvertisersResponse(IReadOnlyList<AdvertiserSummary> Advertisers, long? Next);

/// <summary>Answer of GET /v1/advertisers/{advertiserId}/ads: one page of the advertiser's ads (with q: those matching) in id order.</summary>
/// <param name="Next">Pass as <c>after</c> for the next page; null on the last page. With q a page may hold fewer ads than its limit, even none, while next is set.</param>
public sealed record AdsResponse(long AdvertiserId, IReadOnlyList<AdSummary> Ads, long? Next);

/// <summary>One ad of an advertiser.</summary>
/// <param name="RedirectUrl">Where its clicks are sent.</param>
/// <param name="Deleted">Whether it was removed (its clicks are still answered for).</param>
public sealed record AdSummary(long AdId, string RedirectUrl, bool Deleted);

/// <summary>Answer of GET /v1/reconciliation/runs: the latest reconciliation runs, newest first (admin keys only).</summary>
public sealed record ReconciliationRunsResponse(IReadOnlyList<ReconciliationRun> Runs);

/// <summary>One reconciliation run as stored by the reconciler (scheduled, late-click recount or `kafkaclicks reconcile`).</summary>
/// <param name="AdId">The one ad it was limited to; null for all ads.</param>
/// <param name="RawClicks">Distinct impressions recounted from clicks.raw over the range.</param>
/// <param name="DbClicks">What the database held for the range before the run.</param>
/// <param name="WindowsCorrected">Minute windows whose stored count differed and was replaced by the recount.</param>
public sealed record ReconciliationRun(
    long RunId, DateTimeOffset From, DateTimeOffset To, long? AdId, string Status, long RawClicks, long DbClicks, long WindowsChecked,
    long WindowsCorrected, DateTimeOffset StartedAt, DateTimeOffset? FinishedAt);

[JsonSerializable(typeof(AdClicksResponse))]
[JsonSerializable(typeof(AdvertiserClicksResponse))]
[JsonSerializable(typeof(TopAdsResponse))]
[JsonSerializable(typeof(AdvertisersResponse))]
[JsonSerializable(typeof(AdsResponse))]
[JsonSerializable(typeof(ReconciliationRunsResponse))]
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
internal sealed partial class QueryJsonContext : JsonSerializerContext;
