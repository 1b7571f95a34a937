using System.CommandLine;
using KafkaClicks.Cli.Hosting;

namespace KafkaClicks.Cli.Commands;

public static class RunCommand
{
    public static Command Create()
    {
        var roles = new Option<string>("--roles")
        {
            Description = "Comma-separated roles to host: ingest, aggregator, sink, query, reconciler.",
            Required = true,
        };
        roles.Validators.Add(result =>
        {
            if (!Roles.TryParse(result.GetValueOrDefault<string>(), out _, out var error))
            {
                result.AddError(error!);
            }
        });
        var urls = CliValues.ListenUrls();
        var command = new Command("run",
            "Run the chosen roles against the configured servers (Kafka:BootstrapServers, ConnectionStrings:Postgres, ConnectionStrings:Redis). " +
            "One process per role in production; run `kafkaclicks migrate` once before.");
        command.Options.Add(roles);
        command.Options.Add(urls);
        command.SetAction((parse, ct) =>
        {
            // The validator above already rejected anything TryParse cannot read.
            _ = Roles.TryParse(parse.GetValue(roles), out var chosen, out _);
            return CliErrors.RunUntilStoppedAsync(() => RoleRunner.RunAsync(chosen, demo: false, allInOne: false, parse.GetValue(urls), ct));
        });
        return command;
    }
}
