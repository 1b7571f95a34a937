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

    /// <summary>The value of a sample line (<c>name{labels} value [timestamp]</c>, or <c>name value</c>).</summary>
    public static double Value(string line)
    {
        var labelsEnd = line.LastIndexOf('}');
        var rest = labelsEnd >= 0 ? line[(labelsEnd + 1)..] : line[(line.IndexOf(' ', StringComparison.Ordinal) + 1)..];
        return double.Parse(rest.Trim().Split(' ')[0], CultureInfo.InvariantCulture);
    }

    /// <summary>The sum of every series of <paramref name="metric"/> on a page read by <see cref="ReadAsync"/>.</summary>
    public static double Sum(string[] page, string metric) =>
        page.Where(line => line.StartsWith(metric, StringComparison.Ordinal) && line.Length > metric.Length && line[metric.Length] is '{' or ' ')
            .Sum(Value);
}
