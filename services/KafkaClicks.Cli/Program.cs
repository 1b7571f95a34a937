using System.CommandLine;
using KafkaClicks.Cli.Commands;

var root = new RootCommand("kafkaclicks: self-hosted ad click aggregation. One program hosts every role.");
root.Subcommands.Add(UpCommand.Create());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(MigrateCommand.Create());
root.Subcommands.Add(BrokerCommand.Create());
root.Subcommands.Add(ReconcileCommand.Create());
root.Subcommands.Add(RunsCommand.Create());
root.Subcommands.Add(ReplayCommand.Create());
root.Subcommands.Add(KafkaAdminCommands.Topics());
root.Subcommands.Add(KafkaAdminCommands.Lag());
root.Subcommands.Add(LoadgenCommand.Create());

var parsed = root.Parse(args);
if (parsed.Errors.Count > 0)
{
    foreach (var error in parsed.Errors)
    {
        Console.Error.WriteLine($"kafkaclicks: {error.Message}");
    }

    var command = parsed.CommandResult.Command == root ? "" : " " + parsed.CommandResult.Command.Name;
    Console.Error.WriteLine($"See 'kafkaclicks{command} --help'.");
    return CliErrors.Usage;
}

return await parsed.InvokeAsync();
