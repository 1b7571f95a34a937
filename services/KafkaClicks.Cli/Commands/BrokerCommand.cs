using System.CommandLine;
using KafkaClicks.Cli.Hosting;

namespace KafkaClicks.Cli.Commands;

public static class BrokerCommand
{
    public static Command Create()
    {
        var port = new Option<int?>("--port")
        {
            Description = "Fixed TCP port for the embedded broker (default: a free port).",
            CustomParser = r => CliValues.Number(1, 65535, "between 1 and 65535")(r),
        };
        var command = new Command("broker",
            "Start the embedded Kafka broker (librdkafka's mock cluster) alone, create every topic, print the bootstrap servers and " +
            "keep running until Ctrl-C, so other processes and kcat can use it. Not for production: it keeps data in memory only.");
        command.Options.Add(port);
        command.SetAction((parse, ct) => CliErrors.RunUntilStoppedAsync(async () =>
        {
            var overrides = new Dictionary<string, string?> { ["Kafka:BootstrapServers"] = "" };
            var configuration = KafkaClicksHost.LoadConfiguration(overrides);
            using var logging = KafkaClicksHost.CreateLoggerFactory(toStandardError: false);
            await using var broker = await KafkaClicksHost.StartBrokerAsync(configuration, Role.None, parse.GetValue(port), logging, ct);
            Console.WriteLine($"bootstrap servers: {broker.BootstrapServers}");
            Console.WriteLine($"try: kcat -b {broker.BootstrapServers} -L");
            Console.WriteLine("Ctrl-C stops the broker.");
            await Task.Delay(Timeout.Infinite, ct);
            return CliErrors.Ok;
        }));
        return command;
    }
}
