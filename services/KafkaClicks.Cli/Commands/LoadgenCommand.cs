using System.CommandLine;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Ingest;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Cli.Commands;

/// <summary>`kafkaclicks loadgen`: steady click traffic against an ingest URL, with achieved rate and latency percentiles.</summary>
public static class LoadgenCommand
{
    public static Command Create()
    {
        var url = new Option<Uri>("--url")
        {
            Description = "Ingest base URL (default http://127.0.0.1:8080).",
            DefaultValueFactory = _ => new Uri("http://127.0.0.1:8080"),
            CustomParser = result =>
            {
                var text = result.Tokens.Count > 0 ? result.Tokens[0].Value : "";
                if (Uri.TryCreate(text, UriKind.Absolute, out var parsed) && parsed.Scheme is "http" or "https")
                {
                    return parsed;
                }

                result.AddError($"--url must be an absolute http(s) URL, not '{text}'");
                return null;
            },
        };
        var rate = CliValues.Option("--rate", "Clicks per second to offer (default 500).", 500,
            CliValues.Number(1, 1_000_000, "between 1 and 1000000"));
        var duration = CliValues.Option("--duration", "How long, e.g. 60s, 5m, 1h or 00:01:00 (default 30s).", TimeSpan.FromSeconds(30),
            CliValues.Duration(TimeSpan.FromMilliseconds(1), TimeSpan.FromHours(24), "positive and at most 24h"));
        var ads = CliValues.Option("--ads", "Ad ids 1..N are clicked (they must exist; default 30, the demo's ads).", 30,
            CliValues.Number(1, int.MaxValue, "at least 1"));
        var hotShare = CliValues.Option("--hot-share", "Share of clicks that go to ad 1 (a hot ad), 0..1 (default 0.1).", 0.1,
            CliValues.Number(0.0, 1.0, "between 0 and 1"));
        var duplicates = CliValues.Option("--duplicates", "Share of clicks that repeat an earlier impression, 0..1 (default 0.02).", 0.02,
            CliValues.Number(0.0, 1.0, "between 0 and 1"));
        var connections = CliValues.Option("--connections",
            $"Keep-alive connections at most, one request in flight on each (default {ClickLoad.DefaultConnections}); clicks due while all are busy wait for one.",
            ClickLoad.DefaultConnections, CliValues.Number(1, 65_536, "between 1 and 65536"));
        var json = new Option<bool>("--json") { Description = "Print the result as JSON." };
        var command = new Command("loadgen",
            "Send steady click traffic to an ingest URL: tokens are minted locally with the configured signing key " +
            "(Ingest:Tokens), clicks are GET /c/{token}; reports the achieved rate and latency percentiles.");
        foreach (var option in new Option[] { url, rate, duration, ads, hotShare, duplicates, connections, json })
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

            using var hotAds = new HotAdDetector(Options.Create(ingest), TimeProvider.System);
            var minter = new ImpressionMinter(
                new ImpressionTokens(Options.Create(ingest), Options.Create(ImpressionLifetimeConfiguration.Read(configuration)), TimeProvider.System), hotAds);
            var result = await CliProgress.RunAsync("sending clicks", "clicks", parse.GetValue(json), progress =>
                ClickLoad.RunAsync(parse.GetValue(url)!, minter, parse.GetValue(rate), parse.GetValue(duration), parse.GetValue(ads),
                    parse.GetValue(hotShare), parse.GetValue(duplicates), progress, ct, parse.GetValue(connections)));
            Console.WriteLine(parse.GetValue(json)
                ? JsonSerializer.Serialize(result)
                : $"sent {result["sent"]:N0} clicks in {result["duration_s"]} s ({result["achieved_per_s"]:N0}/s of {result["offered_per_s"]:N0}/s offered): " +
                  $"{result["redirects"]:N0} redirected, {result["other_status"]:N0} other status, {result["errors"]:N0} errors; " +
                  $"latency p50 {result["p50_ms"]} ms, p99 {result["p99_ms"]} ms, max {result["max_ms"]} ms");
            return (long)result["errors"] + (long)result["other_status"] == 0 ? CliErrors.Ok : CliErrors.Failed;
        }));
        return command;
    }
}
