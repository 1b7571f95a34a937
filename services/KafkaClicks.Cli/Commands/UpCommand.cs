using System.CommandLine;
using KafkaClicks.Cli.Hosting;

namespace KafkaClicks.Cli.Commands;

public static class UpCommand
{
    public static Command Create()
    {
        var demo = new Option<bool>("--demo") { Description = "Seed demo advertisers and ads and generate steady demo click traffic." };
        var urls = CliValues.ListenUrls();
        var command = new Command("up",
            "Run every role (ingest, aggregator, sink, query, reconciler) in this process. Without Kafka:BootstrapServers it starts the " +
            "embedded broker; it applies the migrations first. For a laptop, a demo or CI.");
        command.Options.Add(demo);
        command.Options.Add(urls);
        command.SetAction((parse, ct) => CliErrors.RunUntilStoppedAsync(() => RoleRunner.RunAsync(Role.All, parse.GetValue(demo), allInOne: true, parse.GetValue(urls), ct)));
        return command;
    }
}
