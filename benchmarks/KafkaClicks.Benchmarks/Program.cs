using System.Text.Json;
using KafkaClicks.Benchmarks;

// kafkaclicks-bench NAME [--json]: runs one macro benchmark against the local servers that infra/dev.sh started,
// measures its baseline in the same run, and prints the figures (JSON with --json).
var benchmarks = new Dictionary<string, IBenchmark>(StringComparer.Ordinal)
{
    ["aggregate"] = new AggregateBenchmark(),
    ["e2e"] = new EndToEndBenchmark(),
    ["ingest"] = new IngestBenchmark(),
    ["reconcile"] = new ReconcileBenchmark(),
    ["sink"] = new SinkBenchmark(),
    ["query"] = new QueryBenchmark(),
};

if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var benchmark))
{
    Console.Error.WriteLine($"usage: kafkaclicks-bench NAME [--json]; benchmarks: {string.Join(", ", benchmarks.Keys.Order())}");
    return 2;
}

var json = args.Contains("--json");
var result = await benchmark.RunAsync(new BenchmarkContext(json ? Console.Error : Console.Out));
var text = JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true });
Console.WriteLine(text);
return 0;
