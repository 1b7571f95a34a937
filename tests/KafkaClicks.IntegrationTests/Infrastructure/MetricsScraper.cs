using System.Globalization;
using System.Text.RegularExpressions;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Reads counters from a host's Prometheus /metrics page, as Prometheus would.</summary>
public static partial class MetricsScraper
{
    /// <summary>The value of <paramref name="metric"/> with label <paramref name="label"/>=<paramref name="value"/>, 0 when absent.</summary>
    public static async Task<double> ReadAsync(HttpClient http, string metric, string label, string value)
    {
        var text = await http.GetStringAsync(new Uri("/metrics", UriKind.Relative));
        foreach (var line in text.Split('\n'))
        {
            var match = SampleLine().Match(line);
            if (match.Success && match.Groups["name"].Value == metric && match.Groups["labels"].Value.Contains($"{label}=\"{value}\"", StringComparison.Ordinal))
            {
                return double.Parse(match.Groups["value"].Value, CultureInfo.InvariantCulture);
            }
        }

        return 0;
    }

    [GeneratedRegex(@"^(?<name>[a-zA-Z_:][a-zA-Z0-9_:]*)\{(?<labels>[^}]*)\} (?<value>[0-9.eE+-]+)")]
    private static partial Regex SampleLine();
}
