using System.CommandLine;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.Logging;
using Npgsql;
using Spectre.Console;

namespace KafkaClicks.Cli.Commands;

public static class ReconcileCommand
{
    /// <summary>Exit code when part of the range could not be recounted because the log no longer holds it.</summary>
    public const int Partial = 3;

    /// <summary>
    /// --lateness: how far before and past a range the log is read, since a partition's records are in write order and a
    /// record written late (a spool drained after an outage) sits among later timestamps.
    /// </summary>
    internal static Option<TimeSpan> LatenessOption(string purpose) => CliValues.Option("--lateness",
        $"How far before and past the range the log is read {purpose}, e.g. 5m or 00:05:00 (default 5m).", TimeSpan.FromMinutes(5),
        CliValues.Duration(TimeSpan.Zero, TimeSpan.MaxValue, "zero or positive (how far past the range the log is read, e.g. 5m)"));

    public static Command Create()
    {
        var from = new Option<DateTime?>("--from") { Description = "Start of the range (ISO-8601, UTC unless an offset is given).", Required = true, CustomParser = CliValues.Instant };
        var to = new Option<DateTime?>("--to") { Description = "End of the range, exclusive.", Required = true, CustomParser = CliValues.Instant };
        var ad = new Option<long?>("--ad") { Description = "Only this ad.", CustomParser = r => CliValues.Number(long.MinValue, long.MaxValue, "an ad id")(r) };
        var dryRun = new Option<bool>("--dry-run") { Description = "Report the differences, change nothing." };
        var json = new Option<bool>("--json") { Description = "Print the report as JSON." };
        var lateness = LatenessOption("for clicks written late (reconcile reads past the range to the end of the log)");
        var readers = new Option<int?>("--readers")
        {
            Description = $"Consumers reading clicks.raw's partitions in parallel (default {RawLogCounter.DefaultReaders}: two per processor).",
            CustomParser = r => CliValues.Number(1, int.MaxValue, "at least 1")(r),
        };
        var command = new Command("reconcile",
            "Recount clicks.raw for a range (distinct impressions per ad and minute), compare with the database, and unless " +
            "--dry-run correct the windows that differ, refresh their rollups and store a report (see `kafkaclicks runs`). " +
            "The log is read to its end, so every click of the range written so far is counted; runs that correct wait for one " +
            "another (one at a time per database) and only correct final windows: --to may not pass the end of the last minute " +
            "closed (its end plus Aggregator:Grace passed, and the stream stored its final counts) unless --dry-run. " +
            $"Exit code 0 when done, 2 for bad arguments (also a --to not final yet), {Partial} when the log no longer holds the start of the range (that part is not corrected).");
        foreach (var option in new Option[] { from, to, ad, dryRun, json, lateness, readers })
        {
            command.Options.Add(option);
        }

        command.SetAction((parse, ct) => CliErrors.RunAsync(async () =>
        {
            var request = new ReconcileRequest(parse.GetValue(from)!.Value, parse.GetValue(to)!.Value, parse.GetValue(ad), parse.GetValue(dryRun));
            if (request.From >= request.To)
            {
                return CliErrors.BadArguments("reconcile", ["--from must be before --to"]);
            }

            var configuration = KafkaClicksHost.LoadConfiguration();
            await using var dataSource = NpgsqlDataSource.Create(PostgresConnectionString(configuration));
            var options = configuration.GetSection(ReconcilerOptions.Section).Get<ReconcilerOptions>() ?? new ReconcilerOptions();
            var impressions = ImpressionLifetimeConfiguration.Read(configuration);
            if (options.ImpressionsInMemory <= 0)
            {
                throw new KafkaClicksConfigurationException(ReconcilerOptions.NonPositiveImpressionsInMemory);
            }

            var kafka = KafkaClients(configuration);
            using var logging = KafkaClicksHost.CreateLoggerFactory(toStandardError: true);
            var reconciler = new ClickReconciler(dataSource,
                new RawLogCounter(kafka, parse.GetValue(lateness), parse.GetValue(readers), impressions.Lifetime, kafka.Names.ClicksRaw, logging.CreateLogger<RawLogCounter>(),
                    options.ImpressionsInMemory, options.SpillDirectory),
                ReconcilerServiceCollectionExtensions.AggregatorGrace(configuration), null,
                ReconcilerServiceCollectionExtensions.MinuteRetention(configuration));
            ReconcileReport report;
            try
            {
                report = await CliProgress.RunAsync("reading clicks.raw", "events", parse.GetValue(json),
                    progress => reconciler.RunAsync(request, progress, ct));
            }
            catch (RangeNotFinalException e)
            {
                return CliErrors.BadArguments("reconcile", [$"--to: {e.Message}"]);
            }
            catch (RangeBeyondMinuteRetentionException e)
            {
                return CliErrors.BadArguments("reconcile", [$"--from: {e.Message}"]);
            }

            if (parse.GetValue(json))
            {
                Console.WriteLine(JsonSerializer.Serialize(report, ReconcileJsonContext.Default.ReconcileReport));
            }
            else
            {
                Print(report);
            }

            return report.Status == "partial" ? Partial : CliErrors.Ok;
        }));
        return command;
    }

    internal static string PostgresConnectionString(IConfiguration configuration) =>
        configuration.GetConnectionString("Postgres") is { Length: > 0 } value
            ? value
            : throw new KafkaClicksConfigurationException("ConnectionStrings:Postgres is not set (a Npgsql connection string).");

    /// <summary>The Kafka clients the configuration describes; refuses at once a configuration that names no cluster.</summary>
    internal static KafkaClientFactory KafkaClients(IConfiguration configuration)
    {
        var kafka = new KafkaClientFactory(configuration);
        _ = kafka.BootstrapServers;
        return kafka;
    }

    private static void Print(ReconcileReport report)
    {
        var console = AnsiConsole.Console;
        var grid = new Grid().AddColumn().AddColumn();
        grid.AddRow("range", $"{report.From:u} .. {report.To:u}{(report.AdId is { } a ? $" (ad {a})" : "")}");
        grid.AddRow("status", report.DryRun ? $"{report.Status} (dry run: nothing changed)" : $"{report.Status} (run {report.RunId})");
        grid.AddRow("raw events read", $"{report.EventsRead:N0}");
        grid.AddRow("clicks: raw / database", $"{report.RawClicks:N0} / {report.DbClicks:N0}");
        grid.AddRow("windows checked / differing", $"{report.WindowsChecked:N0} / {(report.DryRun ? report.LargestDifferences.Count : report.WindowsCorrected):N0}");
        if (report.UncoveredTo is { } uncovered)
        {
            grid.AddRow("[yellow]not covered[/]", Markup.Escape($"{report.UncoveredFrom:u} .. {uncovered:u}: the log no longer holds it; not corrected"));
        }

        if (report.UndecodableRecords > 0)
        {
            grid.AddRow("[yellow]undecodable records[/]", $"{report.UndecodableRecords:N0} skipped (not clicks; the aggregator skipped them too)");
        }

        grid.AddRow("duration", $"{report.DurationSeconds:F1} s");
        console.Write(grid);
        if (report.LargestDifferences.Count > 0)
        {
            var table = new Table().AddColumns("ad", "minute", "raw", "database", "difference");
            foreach (var d in report.LargestDifferences)
            {
                table.AddRow($"{d.AdId}", $"{d.Minute:u}", $"{d.RawClicks:N0}", $"{d.DbClicks:N0}", $"{d.Difference:+#,0;-#,0;0}");
            }

            console.Write(table);
        }
    }
}
