using System.CommandLine;
using KafkaClicks.Cli.Hosting;

namespace KafkaClicks.Cli.Commands;

public static class MigrateCommand
{
    public static Command Create()
    {
        var command = new Command("migrate",
            "Apply the database migrations (infra/sql) to ConnectionStrings:Postgres. Idempotent; uses TimescaleDB when the extension is available.");
        command.SetAction((_, ct) => CliErrors.RunAsync(async () =>
        {
            var configuration = KafkaClicksHost.LoadConfiguration();
            using var logging = KafkaClicksHost.CreateLoggerFactory(toStandardError: false);
            var result = await KafkaClicksHost.MigrateAsync(configuration, logging, ct);
            Console.WriteLine($"migrated ({result.Flavor.ToString().ToLowerInvariant()}): {result.Applied.Count} applied, {result.AlreadyApplied.Count} already applied");
            return CliErrors.Ok;
        }));
        return command;
    }
}
