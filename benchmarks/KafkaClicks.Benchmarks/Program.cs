using System.Text.Json;
using KafkaClicks.Benchmarks;

// kafkaclicks-bench NAME [--json]: runs one macro benchmark against the local servers that infra/dev.sh started,
// measures its baseline in the same run, and prints the figures as JSON on stdout (--json is accepted for scripts).
var benchmarks = new Dictionary<string, IBenchmark>(StringComparer.Ordinal)
{
    ["aggregate"] = new AggregateBenchmark(),
    ["e2e"] = new EndToEndBenchmark(),
    ["ingest"] = new IngestBenchmark(),
    ["reconcile"] = new ReconcileBenchmark(),
    ["sink"] = new SinkBenchmark(),
    ["query"] = new QueryBenchmark(),
    ["scale"] = new ScaleBenchmark(),
};

if (args is [ReconcileBenchmark.ChildCommand])
{
    return await ReconcileBenchmark.RunChildAsync();
}

if (args.Length == 0 || !benchmarks.TryGetValue(args[0], out var benchmark))
{
    Console.Error.WriteLine($"usage: kafkaclicks-bench NAME [--json]; benchmarks: {string.Join(", ", benchmarks.Keys.Order())}");
    return 2;
}


// Everything the product logs while it runs goes to stderr; stdout carries only the result.
var stdout = Console.Out;
Console.SetOut(Console.Error);
var context = new BenchmarkContext(Console.Error);
await context.ClearRedisAsync();
var result = await benchmark.RunAsync(context);
stdout.WriteLine(JsonSerializer.Serialize(result, new JsonSerializerOptions { WriteIndented = true }));
return 0;
