using System.Globalization;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// Where a click's time in the ingest role goes, from the role's own histograms on /metrics: the whole request
/// (ASP.NET Core's <c>http.server.request.duration</c> for the click route) and the wait for the broker's
/// acknowledgement (<c>kafkaclicks.ingest.produce.duration</c>). What the load generator measures beyond the request is
/// its own queueing and the connection. The buckets are the product's, so the report is the share of clicks above each
/// bound rather than interpolated percentiles.
/// </summary>
internal sealed class IngestLatency
{
    private const string Requests = "http_server_request_duration_seconds_bucket";
    private const string Produce = "kafkaclicks_ingest_produce_duration_seconds_bucket";
    private static readonly double[] BoundsMs = [5, 10, 25, 50, 100, 250];

    private readonly Dictionary<(string Histogram, double Le), double> _buckets;

    private IngestLatency(Dictionary<(string, double), double> buckets) => _buckets = buckets;

    public static async Task<IngestLatency> ScrapeAsync(HttpClient http, string baseUrl)
    {
        var buckets = new Dictionary<(string, double), double>();
        foreach (var line in await MetricsPage.ReadAsync(http, baseUrl))
        {
            var histogram = line.StartsWith(Requests + "{", StringComparison.Ordinal) && line.Contains("http_route=\"/c/{token}\"", StringComparison.Ordinal) ? Requests
                : line.StartsWith(Produce + "{", StringComparison.Ordinal) && line.Contains("result=\"acked\"", StringComparison.Ordinal) ? Produce
                : null;
            var le = line.IndexOf("le=\"", StringComparison.Ordinal);
            if (histogram is null || le < 0)
            {
                continue;
            }

            var bound = line[(le + 4)..line.IndexOf('"', le + 4)];
            var key = (histogram, bound == "+Inf" ? double.PositiveInfinity : double.Parse(bound, CultureInfo.InvariantCulture));
            buckets[key] = buckets.GetValueOrDefault(key) + MetricsPage.Value(line);
        }

        return new IngestLatency(buckets);
    }

    public IngestLatency Minus(IngestLatency earlier) =>
        new(_buckets.ToDictionary(b => b.Key, b => b.Value - earlier._buckets.GetValueOrDefault(b.Key)));

    /// <summary>For the requests and the acknowledgements: how many there were, and the share above each bound (ms).</summary>
    public Dictionary<string, object> Report() => new()
    {
        ["request"] = Shares(Requests),
        ["broker_ack"] = Shares(Produce),
        ["note"] = "share of the measured clicks above each bound: the ingest role's whole request, and its wait for the broker's acknowledgement",
    };

    private Dictionary<string, object> Shares(string histogram)
    {
        var total = _buckets.GetValueOrDefault((histogram, double.PositiveInfinity));
        var shares = new Dictionary<string, object> { ["count"] = total };
        foreach (var bound in BoundsMs)
        {
            // Cumulative buckets: what is above a bound is the total less the bucket that ends there.
            if (_buckets.TryGetValue((histogram, bound / 1000), out var within) && total > 0)
            {
                shares[bound.ToString(CultureInfo.InvariantCulture)] = Math.Round((total - within) / total, 4);
            }
        }

        return shares;
    }
}
