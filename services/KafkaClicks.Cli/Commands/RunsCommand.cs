using System.CommandLine;
using System.Text.Json;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Reconciler;
using KafkaClicks.ServiceDefaults;
using Npgsql;
using Spectre.Console;

namespace KafkaClicks.Cli.Commands;

public static class RunsCommand
{
    public static Command Create()
    {
        var last = CliValues.Option("--last", "How many runs (default 10).", 10, CliValues.Number(1, 10_000, "between 1 and 10000"));
        var json = new Option<bool>("--json") { Description = "Print the reports as JSON lines." };
        var command = new Command("runs", "Show past reconciliation reports, newest first.");
        command.Options.Add(last);
        command.Options.Add(json);
        command.SetAction((parse, ct) => CliErrors.RunAsync(async () =>
        {
            var configuration = KafkaClicksHost.LoadConfiguration();
            await using var dataSource = NpgsqlDataSource.Create(ReconcileCommand.PostgresConnectionString(configuration));
            var reports = await new ClickReconciler(dataSource, new RawLogCounter(new KafkaClientFactory(configuration), TimeSpan.Zero)).RecentAsync(parse.GetValue(last), ct);
            if (parse.GetValue(json))
            {
                foreach (var report in reports)
                {
                    Console.WriteLine(JsonSerializer.Serialize(report, ReconcileJsonContext.Default.ReconcileReport).ReplaceLineEndings(""));
                }

                return CliErrors.Ok;
            }

            var table = new Table().AddColumns("run", "range", "ad", "status", "raw", "database", "windows", "corrected", "duration");
            foreach (var r in reports)
            {
                table.AddRow($"{r.RunId}", $"{r.From:u} .. {r.To:u}", r.AdId?.ToString(System.Globalization.CultureInfo.InvariantCulture) ?? "all",
                    r.Status, $"{r.RawClicks:N0}", $"{r.DbClicks:N0}", $"{r.WindowsChecked:N0}", $"{r.WindowsCorrected:N0}", $"{r.DurationSeconds:F1} s");
            }

            AnsiConsole.Write(table);
            return CliErrors.Ok;
        }));
        return command;
    }
}
