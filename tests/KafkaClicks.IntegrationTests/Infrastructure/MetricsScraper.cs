using System.Globalization;
using System.Text.RegularExpressions;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Reads counters from a host's Prometheus /metrics page, as Prometheus would.</summary>
public static partial class MetricsScraper
{
    /// <summary>
    /// The sum of <paramref name="metric"/> over its series with label <paramref name="label"/>=<paramref name="value"/>
    /// (whatever their other labels), 0 when there is none.
    /// </summary>
    public static async Task<double> ReadAsync(HttpClient http, string metric, string label, string value)
    {
        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        var sum = 0.0;
        foreach (var line in text.Split('\n'))
        {
            var match = SampleLine().Match(line);
            if (match.Success && match.Groups["name"].Value == metric && match.Groups["labels"].Value.Contains($"{label}=\"{value}\"", StringComparison.Ordinal))
            {
                sum += double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return sum;
    }

    /// <summary>
    /// <see cref="ReadAsync"/> after the exporter's response cache (300 ms, OpenTelemetry's default) has expired, so the
    /// value includes everything done before the call.
    /// </summary>
    public static async Task<double> ReadFreshAsync(HttpClient http, string metric, string label, string value)
    {
        await Task.Delay(TimeSpan.FromMilliseconds(350));
        return await ReadAsync(http, metric, label, value);
    }

    // Label values are quoted and may hold braces (route="/v1/ads/{adId}/clicks").
    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?<labels>(?:[^}""]|""(?:[^""\\]|\\.)*"")*)\} (?<value>[0-9.eE+-]+)")]
    private static partial Regex SampleLine();
}
