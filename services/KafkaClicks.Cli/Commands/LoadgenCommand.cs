using System.CommandLine;
using System.Diagnostics;
using System.Net;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Cli.Commands;

/// <summary>`kafkaclicks loadgen`: steady click traffic against an ingest URL, with achieved rate and latency percentiles.</summary>
public static class LoadgenCommand
{
    public static Command Create()
    {
        var url = new Option<Uri>("--url") { Description = "Ingest base URL (default http://127.0.0.1:8080).", DefaultValueFactory = _ => new Uri("http://127.0.0.1:8080") };
        var rate = new Option<int>("--rate") { Description = "Clicks per second to offer (default 500).", DefaultValueFactory = _ => 500 };
        var duration = new Option<TimeSpan>("--duration") { Description = "How long, e.g. 00:00:30 (default 30 s).", DefaultValueFactory = _ => TimeSpan.FromSeconds(30) };
        var ads = new Option<int>("--ads") { Description = "Ad ids 1..N are clicked (they must exist; default 30, the demo's ads).", DefaultValueFactory = _ => 30 };
        var hotShare = new Option<double>("--hot-share") { Description = "Share of clicks that go to ad 1 (a hot ad), 0..1 (default 0.1).", DefaultValueFactory = _ => 0.1 };
        var duplicates = new Option<double>("--duplicates") { Description = "Share of clicks that repeat an earlier impression, 0..1 (default 0.02).", DefaultValueFactory = _ => 0.02 };
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        rate.Validators.Add(r => { if (r.GetValueOrDefault<int>() is < 1 or > 1_000_000) { r.AddError("--rate must be between 1 and 1000000"); } });
        ads.Validators.Add(r => { if (r.GetValueOrDefault<int>() < 1) { r.AddError("--ads must be at least 1"); } });
        duration.Validators.Add(r => { if (r.GetValueOrDefault<TimeSpan>() <= TimeSpan.Zero || r.GetValueOrDefault<TimeSpan>() > TimeSpan.FromHours(24)) { r.AddError("--duration must be positive and at most 24 h"); } });
        hotShare.Validators.Add(r => { if (r.GetValueOrDefault<double>() is < 0 or > 1) { r.AddError("--hot-share must be between 0 and 1"); } });
        duplicates.Validators.Add(r => { if (r.GetValueOrDefault<double>() is < 0 or > 1) { r.AddError("--duplicates must be between 0 and 1"); } });
        var command = new Command("loadgen",
            "Send steady click traffic to an ingest URL: tokens are minted locally with the configured signing key " +
            "(Ingest:Tokens), clicks are GET /c/{token}; reports the achieved rate and latency percentiles.");
        foreach (var option in new Option[] { url, rate, duration, ads, hotShare, duplicates, json })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => CliErrors.RunAsync(async () =>
        {
            var configuration = KafkaClicksHost.LoadConfiguration();
            var ingest = configuration.GetSection(IngestOptions.Section).Get<IngestOptions>() ?? new IngestOptions();
            var validation = new IngestOptionsValidator().Validate(null, ingest);
            if (validation.Failed)
            {
                throw new OptionsValidationException(IngestOptions.Section, typeof(IngestOptions), validation.Failures);
            }

            var tokens = new ImpressionTokens(Options.Create(ingest), TimeProvider.System);
            var result = await RunAsync(parse.GetValue(url)!, tokens, parse.GetValue(rate), parse.GetValue(duration), parse.GetValue(ads),
                parse.GetValue(hotShare), parse.GetValue(duplicates), parse.GetValue(json), ct);
            Console.WriteLine(parse.GetValue(json)
                ? JsonSerializer.Serialize(result)
                : $"sent {result["sent"]:N0} clicks in {result["duration_s"]} s ({result["achieved_per_s"]:N0}/s of {result["offered_per_s"]:N0}/s offered): " +
                  $"{result["redirects"]:N0} redirected, {result["other_status"]:N0} other status, {result["errors"]:N0} errors; " +
                  $"latency p50 {result["p50_ms"]} ms, p99 {result["p99_ms"]} ms, max {result["max_ms"]} ms");
            return (long)result["errors"] + (long)result["other_status"] == 0 ? CliErrors.Ok : CliErrors.Failed;
        }));
        return command;
    }

    private static async Task<Dictionary<string, object>> RunAsync(Uri url, ImpressionTokens tokens, int rate, TimeSpan duration, int ads,
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
