using System.Diagnostics;
using System.Threading.Channels;
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
    /// Connections the load keeps open to the ingest URL at most unless told otherwise (HTTP/1.1 keep-alive, one request
    /// at a time each): clicks due while every one waits for an answer wait for the first that is free.
    /// </summary>
    public const int DefaultConnections = 256;

    /// <summary>A request with no complete answer this long after it was sent is an error.</summary>
    public static readonly TimeSpan RequestTimeout = TimeSpan.FromSeconds(10);

    /// <summary>
    /// Offers <paramref name="rate"/> clicks per second for <paramref name="duration"/>. A request that fails or gets no
    /// answer within <see cref="RequestTimeout"/> is an error; once <paramref name="cancellationToken"/> fires, no new
    /// click is sent and the ones in flight are abandoned, and the cancellation is thrown.
    /// </summary>
    public static Task<Dictionary<string, object>> RunAsync(Uri url, ImpressionMinter minter, int rate, TimeSpan duration, int ads,
        double hotShare, double duplicates, IProgress<ReadProgress>? progress, CancellationToken cancellationToken,
        int connections = DefaultConnections)
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
        }, rate, duration, progress, cancellationToken, connections);
    }

    /// <summary>
    /// Offers <paramref name="rate"/> GETs per second of the paths <paramref name="pathOf"/> gives for request 0, 1, ...
    /// for <paramref name="duration"/>, each released when due whatever the answers so far (an open loop, as real
    /// clients are), over at most <paramref name="connections"/> keep-alive connections. A request's latency runs from its
    /// release, so time spent waiting for a free connection while the server is slow counts (no coordinated omission);
    /// the generator's own lateness in releasing it (its timer wakes a millisecond or more late) does not, and shows in
    /// the achieved rate instead.
    /// </summary>
    /// <remarks>
    /// The requests go through <see cref="HttpGetConnection"/>, a bare HTTP/1.1 GET client, not HttpClient: at the
    /// brief's 10,000 clicks/s on the benchmark's 2 cores HttpClient's own cost per request (134-150 us of CPU per click,
    /// HISTORY.md) took more of the machine than the ingest role it measured.
    /// </remarks>
    public static async Task<Dictionary<string, object>> RunAsync(Uri url, Func<long, string> pathOf, int rate, TimeSpan duration,
        IProgress<ReadProgress>? progress, CancellationToken cancellationToken, int connections = DefaultConnections)
    {
        var total = (long)(rate * duration.TotalSeconds);
        var latencies = new LatencySample(capacity: 1_000_000);
        var counts = new Counts();
        var released = Channel.CreateUnbounded<ReleasedRequest>(new UnboundedChannelOptions { SingleWriter = true });
        using var abandon = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        var (pausedBefore, collectionsBefore) = (GC.GetTotalPauseDuration(), GC.CollectionCount(0));
        var start = Stopwatch.GetTimestamp();
        var workers = Enumerable.Range(0, connections)
            .Select(_ => Task.Run(() => SendAsync(url, released.Reader, latencies, counts, abandon.Token), CancellationToken.None))
            .ToList();
        var reported = Stopwatch.StartNew();
        progress?.Report(new ReadProgress(0, total));
        try
        {
            for (long i = 0; i < total; i++)
            {
                cancellationToken.ThrowIfCancellationRequested();
                // Requests due within the next millisecond go now: Task.Delay cannot wait less, and a wait of exactly
                // -1 ms would be its "forever".
                var dueAt = start + (long)(i * (double)Stopwatch.Frequency / rate);
                var wait = dueAt - Stopwatch.GetTimestamp();
                if (wait > Stopwatch.Frequency / 1000)
                {
                    await Task.Delay(TimeSpan.FromSeconds(wait / (double)Stopwatch.Frequency), cancellationToken);
                }

                released.Writer.TryWrite(new ReleasedRequest(pathOf(i), Stopwatch.GetTimestamp()));
                if (progress is not null && reported.Elapsed > TimeSpan.FromMilliseconds(250))
                {
                    reported.Restart();
                    progress.Report(new ReadProgress(Interlocked.Read(ref counts.Sent), total));
                }
            }
        }
        catch (OperationCanceledException)
        {
            await abandon.CancelAsync();
            throw;
        }
        finally
        {
            released.Writer.TryComplete();
            await Task.WhenAll(workers);
        }

        progress?.Report(new ReadProgress(total, total));
        var elapsed = Stopwatch.GetElapsedTime(start).TotalSeconds;
        var measured = latencies.Sorted();
        double Percentile(double p) => measured.Length == 0 ? 0 : Math.Round(measured[Math.Min(measured.Length - 1, (int)(p * measured.Length))], 2);
        return new Dictionary<string, object>
        {
            ["sent"] = counts.Sent,
            ["duration_s"] = Math.Round(elapsed, 1),
            ["offered_per_s"] = rate,
            ["connections"] = connections,
            ["achieved_per_s"] = Math.Round(counts.Sent / elapsed),
            ["redirects"] = counts.Redirects,
            ["other_status"] = counts.Other,
            ["errors"] = counts.Errors,
            ["p50_ms"] = Percentile(0.50),
            ["p99_ms"] = Percentile(0.99),
            ["max_ms"] = Math.Round(latencies.Max, 2),
            // The generator's own pauses delay the answers it is reading: they are in its latencies.
            ["gc_pause_ms"] = Math.Round((GC.GetTotalPauseDuration() - pausedBefore).TotalMilliseconds),
            ["gc_collections"] = GC.CollectionCount(0) - collectionsBefore,
        };
    }

    /// <summary>One connection's loop: takes the next released request, sends it, counts the answer; reconnects after a failure.</summary>
    private static async Task SendAsync(Uri url, ChannelReader<ReleasedRequest> released, LatencySample latencies, Counts counts, CancellationToken abandon)
    {
        HttpGetConnection? connection = null;
        try
        {
            while (await released.WaitToReadAsync(abandon))
            {
                while (released.TryRead(out var request))
                {
                    try
                    {
                        connection ??= await HttpGetConnection.OpenAsync(url, RequestTimeout, abandon);
                        var status = await connection.GetAsync(request.Path, abandon);
                        Interlocked.Increment(ref status == 302 ? ref counts.Redirects : ref counts.Other);
                        if (!connection.IsOpen)
                        {
                            // The server ended the connection after its answer (Connection: close): the next one opens another.
                            connection.Dispose();
                            connection = null;
                        }
                    }
                    catch (HttpGetConnection.FailedException)
                    {
                        // Refused, reset, no complete answer in time, or an answer that is not HTTP/1.1.
                        Interlocked.Increment(ref counts.Errors);
                        connection?.Dispose();
                        connection = null;
                    }

                    latencies.Add(Stopwatch.GetElapsedTime(request.ReleasedTimestamp).TotalMilliseconds);
                    Interlocked.Increment(ref counts.Sent);
                }
            }
        }
        catch (OperationCanceledException) when (abandon.IsCancellationRequested)
        {
            // Abandoned: the caller throws the cancellation.
        }
        finally
        {
            connection?.Dispose();
        }
    }

    private readonly record struct ReleasedRequest(string Path, long ReleasedTimestamp);

    private sealed class Counts
    {
        public long Sent;
        public long Redirects;
        public long Other;
        public long Errors;
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
