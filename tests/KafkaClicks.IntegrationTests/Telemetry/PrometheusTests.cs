using System.Diagnostics;
using System.Globalization;
using System.Net;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Telemetry;

/// <summary>Debian's Prometheus scrapes the ingest role's /metrics; its counter of counted clicks equals the clicks sent.</summary>
public class PrometheusTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private const int Clicks = 37;

    [Fact]
    public async Task Prometheus_sees_exactly_the_clicks_that_were_counted()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest);
        await host.AddAdvertiserAsync(1, 95);
        var before = await MetricsScraper.ReadAsync(host.Http, "kafkaclicks_ingest_clicks_total", "outcome", "counted");
        for (var i = 0; i < Clicks; i++)
        {
            using var click = await host.Http.GetAsync(new Uri($"/c/{await host.MintAsync(95)}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
        }

        var directory = Directory.CreateTempSubdirectory("kafkaclicks-prometheus-");
        var port = FreePorts.Next();
        var config = Path.Combine(directory.FullName, "prometheus.yml");
        await File.WriteAllTextAsync(config, $"""
            global:
              scrape_interval: 1s
            scrape_configs:
              - job_name: kafkaclicks
                static_configs:
                  - targets: ["{host.BaseAddress.Authority}"]
            """);
        var start = new ProcessStartInfo("prometheus") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { $"--config.file={config}", $"--storage.tsdb.path={Path.Combine(directory.FullName, "data")}", $"--web.listen-address=127.0.0.1:{port}" })
        {
            start.ArgumentList.Add(arg);
        }

        using var prometheus = Process.Start(start)!;
        _ = prometheus.StandardOutput.ReadToEndAsync();
        _ = prometheus.StandardError.ReadToEndAsync();
        try
        {
            using var http = new HttpClient { BaseAddress = new Uri($"http://127.0.0.1:{port}"), Timeout = TimeSpan.FromSeconds(5) };
            double? seen = null;
            var deadline = DateTime.UtcNow.AddSeconds(60);
            while (DateTime.UtcNow < deadline && seen != before + Clicks)
            {
                await Task.Delay(500);
                try
                {
                    var query = Uri.EscapeDataString("sum(kafkaclicks_ingest_clicks_total{outcome=\"counted\"})");
                    using var json = JsonDocument.Parse(await http.GetStringAsync(new Uri($"/api/v1/query?query={query}", UriKind.Relative)));
                    var result = json.RootElement.GetProperty("data").GetProperty("result");
                    if (result.GetArrayLength() == 1)
                    {
                        seen = double.Parse(result[0].GetProperty("value")[1].GetString()!, CultureInfo.InvariantCulture);
                    }
                }
                catch (HttpRequestException)
                {
                    // Prometheus is still starting.
                }
            }

            Assert.Equal(before + Clicks, seen);
        }
        finally
        {
            prometheus.Kill(entireProcessTree: true);
            await prometheus.WaitForExitAsync();
            directory.Delete(recursive: true);
        }
    }
}
