using System.Diagnostics;
using System.Net;
using KafkaClicks.Ingest;

namespace KafkaClicks.Cli.Commands;

/// <summary>
/// Steady click traffic at a fixed offered rate against an ingest URL: tokens minted locally, a share of clicks on
/// a hot ad, a share repeating earlier impressions. Used by `kafkaclicks loadgen` and the end-to-end benchmark.
/// </summary>
public static class ClickLoad
{
    public static async Task<Dictionary<string, object>> RunAsync(Uri url, ImpressionTokens tokens, int rate, TimeSpan duration, int ads,
        double hotShare, double duplicates, bool quiet, CancellationToken cancellationToken)
    {
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, MaxConnectionsPerServer = 256 }) { BaseAddress = url, Timeout = TimeSpan.FromSeconds(10) };
        var total = (long)(rate * duration.TotalSeconds);
        var latencies = new double[total];
        long sent = 0, redirects = 0, other = 0, errors = 0;
        var recent = new string[256];
        var random = new Random();
        var clock = Stopwatch.StartNew();
        var inFlight = new List<Task>();
        var progress = Stopwatch.StartNew();
        for (long i = 0; i < total && !cancellationToken.IsCancellationRequested; i++)
        {
            var due = TimeSpan.FromSeconds(i / (double)rate);
            if (due > clock.Elapsed)
            {
                await Task.Delay(due - clock.Elapsed, cancellationToken);
            }

            string token;
            if (i > recent.Length && random.NextDouble() < duplicates)
            {
                token = recent[random.Next(recent.Length)];
            }
            else
            {
                var adId = random.NextDouble() < hotShare ? 1 : 1 + random.Next(ads);
                token = tokens.Mint(adId).Token;
                recent[i % recent.Length] = token;
            }

            var index = i;
            inFlight.Add(Task.Run(async () =>
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await http.GetAsync(new Uri($"/c/{token}", UriKind.Relative), cancellationToken);
                    latencies[index] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    Interlocked.Increment(ref response.StatusCode == HttpStatusCode.Redirect ? ref redirects : ref other);
                }
                catch (HttpRequestException)
                {
                    latencies[index] = Stopwatch.GetElapsedTime(started).TotalMilliseconds;
                    Interlocked.Increment(ref errors);
                }

                Interlocked.Increment(ref sent);
            }, cancellationToken));
            if (inFlight.Count >= 4096)
            {
                inFlight.RemoveAll(t => t.IsCompleted);
            }

            if (!quiet && progress.Elapsed > TimeSpan.FromSeconds(5))
            {
                progress.Restart();
                await Console.Error.WriteLineAsync($"loadgen: {Interlocked.Read(ref sent):N0}/{total:N0} sent, {i / clock.Elapsed.TotalSeconds:N0}/s");
            }
        }

        await Task.WhenAll(inFlight);
        var elapsed = clock.Elapsed.TotalSeconds;
        var measured = latencies.Take((int)sent).Order().ToArray();
        double Percentile(double p) => measured.Length == 0 ? 0 : Math.Round(measured[Math.Min(measured.Length - 1, (int)(p * measured.Length))], 2);
        return new Dictionary<string, object>
        {
            ["sent"] = sent,
            ["duration_s"] = Math.Round(elapsed, 1),
            ["offered_per_s"] = rate,
            ["achieved_per_s"] = Math.Round(sent / elapsed),
            ["redirects"] = redirects,
            ["other_status"] = other,
            ["errors"] = errors,
            ["p50_ms"] = Percentile(0.50),
            ["p99_ms"] = Percentile(0.99),
            ["max_ms"] = measured.Length == 0 ? 0 : Math.Round(measured[^1], 2),
        };
    }
}
