using System.Diagnostics;
using System.Net;
using KafkaClicks.Ingest;
using KafkaClicks.Reconciler;

namespace KafkaClicks.Cli.Commands;

/// <summary>
/// Steady click traffic at a fixed offered rate against an ingest URL: tokens minted locally, a share of clicks on
/// a hot ad, a share repeating earlier impressions. Used by `kafkaclicks loadgen` and the end-to-end benchmark.
/// </summary>
public static class ClickLoad
{
    /// <summary>
    /// Offers <paramref name="rate"/> clicks per second for <paramref name="duration"/>. A request that fails or gets no
    /// answer within 10 s is an error; once <paramref name="cancellationToken"/> fires, no new click is sent and the
    /// ones in flight are abandoned, and the cancellation is thrown.
    /// </summary>
    public static Task<Dictionary<string, object>> RunAsync(Uri url, ImpressionMinter minter, int rate, TimeSpan duration, int ads,
        double hotShare, double duplicates, IProgress<ReadProgress>? progress, CancellationToken cancellationToken)
    {
        var recent = new string[256];
        var random = new Random();
        return RunAsync(url, i =>
        {
            if (i > recent.Length && random.NextDouble() < duplicates)
            {
                return recent[random.Next(recent.Length)];
            }

            var adId = random.NextDouble() < hotShare ? 1 : 1 + random.Next(ads);
            var path = "/c/" + minter.Mint(adId).Token;
            recent[i % recent.Length] = path;
            return path;
        }, rate, duration, progress, cancellationToken);
    }

    /// <summary>
    /// Offers <paramref name="rate"/> GETs per second of the paths <paramref name="pathOf"/> gives for request 0, 1, ...
    /// for <paramref name="duration"/>, each sent when due whatever the answers so far (an open loop, as real clients are).
    /// </summary>
    public static async Task<Dictionary<string, object>> RunAsync(Uri url, Func<long, string> pathOf, int rate, TimeSpan duration,
        IProgress<ReadProgress>? progress, CancellationToken cancellationToken)
    {
        using var http = new HttpClient(new SocketsHttpHandler { AllowAutoRedirect = false, MaxConnectionsPerServer = 256 }) { BaseAddress = url, Timeout = TimeSpan.FromSeconds(10) };
        var total = (long)(rate * duration.TotalSeconds);
        var latencies = new LatencySample(capacity: 1_000_000);
        long sent = 0, redirects = 0, other = 0, errors = 0;
        var clock = Stopwatch.StartNew();
        var inFlight = new List<Task>();
        var reported = Stopwatch.StartNew();
        progress?.Report(new ReadProgress(0, total));
        for (long i = 0; i < total; i++)
        {
            cancellationToken.ThrowIfCancellationRequested();
            // The clock is read once: read twice, it can move past the due time between the reads, and a wait of exactly
            // -1 ms is Task.Delay's "forever" (the likely cause of a benchmark's sender found awaiting a Task.Delay
            // minutes after every planned wait had ended).
            var wait = TimeSpan.FromSeconds(i / (double)rate) - clock.Elapsed;
            if (wait > TimeSpan.Zero)
            {
                await Task.Delay(wait, cancellationToken);
            }

            var path = pathOf(i);

            inFlight.Add(Task.Run(async () =>
            {
                var started = Stopwatch.GetTimestamp();
                try
                {
                    using var response = await http.GetAsync(new Uri(path, UriKind.Relative), cancellationToken);
                    Interlocked.Increment(ref response.StatusCode == HttpStatusCode.Redirect ? ref redirects : ref other);
                }
                catch (Exception e) when (e is HttpRequestException || (e is OperationCanceledException && !cancellationToken.IsCancellationRequested))
                {
                    // Refused, reset or no answer within the client's timeout.
                    Interlocked.Increment(ref errors);
                }

                latencies.Add(Stopwatch.GetElapsedTime(started).TotalMilliseconds);
                Interlocked.Increment(ref sent);
            }, cancellationToken));
            if (inFlight.Count >= 4096)
            {
                inFlight.RemoveAll(t => t.IsCompleted);
            }

            if (progress is not null && reported.Elapsed > TimeSpan.FromMilliseconds(250))
            {
                reported.Restart();
                progress.Report(new ReadProgress(Interlocked.Read(ref sent), total));
            }
        }

        await Task.WhenAll(inFlight);
        progress?.Report(new ReadProgress(total, total));
        var elapsed = clock.Elapsed.TotalSeconds;
        var measured = latencies.Sorted();
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
            ["max_ms"] = Math.Round(latencies.Max, 2),
        };
    }

    /// <summary>
    /// Latencies of every request, or a uniform sample of them once there are more than <c>capacity</c> (reservoir
    /// sampling), so a long run at a high rate needs bounded memory; the maximum is always exact.
    /// </summary>
    private sealed class LatencySample(int capacity)
    {
        private readonly List<double> _values = [];
        private readonly Random _random = new(17);
        private long _seen;

        public double Max { get; private set; }

        public void Add(double milliseconds)
        {
            lock (_values)
            {
                Max = Math.Max(Max, milliseconds);
                _seen++;
                if (_values.Count < capacity)
                {
                    _values.Add(milliseconds);
                }
                else if (_random.NextInt64(_seen) is var slot && slot < capacity)
                {
                    _values[(int)slot] = milliseconds;
                }
            }
        }

        public double[] Sorted()
        {
            lock (_values)
            {
                return [.. _values.Order()];
            }
        }
    }
}
