using System.Globalization;

namespace KafkaClicks.Benchmarks;

/// <summary>A role's Prometheus /metrics page, read as Prometheus would.</summary>
internal static class MetricsPage
{
    /// <summary>The page's lines, read after the exporter's 300 ms response cache, so they hold everything done before the call.</summary>
    public static async Task<string[]> ReadAsync(HttpClient http, string baseUrl)
    {
        await Task.Delay(350);
        return (await http.GetStringAsync(new Uri(baseUrl + "/metrics"))).Split('\n');
    }

    /// <summary>The value of a sample line (<c>name{labels} value [timestamp]</c>).</summary>
    public static double Value(string line) =>
        double.Parse(line[(line.LastIndexOf('}') + 1)..].Trim().Split(' ')[0], CultureInfo.InvariantCulture);
}
