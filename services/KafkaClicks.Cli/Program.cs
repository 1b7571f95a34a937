using System.CommandLine;
using KafkaClicks.Cli.Commands;

var root = new RootCommand("kafkaclicks: self-hosted ad click aggregation. One program hosts every role.");
root.Subcommands.Add(UpCommand.Create());
root.Subcommands.Add(RunCommand.Create());
root.Subcommands.Add(MigrateCommand.Create());
root.Subcommands.Add(BrokerCommand.Create());
return await root.Parse(args).InvokeAsync();
