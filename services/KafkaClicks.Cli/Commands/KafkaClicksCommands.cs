using System.CommandLine;

namespace KafkaClicks.Cli.Commands;

/// <summary>The command tree of the kafkaclicks program: every command is registered here, so it is in --help.</summary>
public static class KafkaClicksCommands
{
    public static RootCommand Root()
    {
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
        return root;
    }
}
