using System.CommandLine.Parsing;
using KafkaClicks.Cli.Commands;

var parsed = KafkaClicksCommands.Root().Parse(args);
if (parsed.Errors.Count > 0)
{
    var command = new List<string>();
    for (var result = parsed.CommandResult; result.Parent is CommandResult parent; result = parent)
    {
        command.Insert(0, result.Command.Name);
    }

    return CliErrors.BadArguments(string.Join(' ', command), parsed.Errors.Select(e => e.Message.TrimEnd('.')));
}

return await parsed.InvokeAsync();
