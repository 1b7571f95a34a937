using Avro;
using KafkaClicks.Contracts.CodeGen;

// Regenerates schemas/KafkaClicks.Contracts/Generated/*.cs from schemas/*.avsc.
// With --check it only compares and exits 1 when the committed files are stale (for CI).
var check = args.Contains("--check", StringComparer.Ordinal);
var root = FindRepositoryRoot(Directory.GetCurrentDirectory()) ?? FindRepositoryRoot(AppContext.BaseDirectory);
if (root is null)
{
    Console.Error.WriteLine("KafkaClicks.sln not found above the current directory; run from inside the repository.");
    return 2;
}

var schemaFiles = Directory.GetFiles(Path.Combine(root, "schemas"), "*.avsc").Order(StringComparer.Ordinal).ToList();
var schemas = schemaFiles.Select(file => Schema.Parse(File.ReadAllText(file))).ToList();
var files = ContractsCodeGenerator.Generate(schemas);
var outputFolder = Path.Combine(root, "schemas", "KafkaClicks.Contracts", ContractsCodeGenerator.GeneratedFolder);
Directory.CreateDirectory(outputFolder);

var stale = new List<string>();
foreach (var (name, content) in files)
{
    var path = Path.Combine(outputFolder, name);
    if (File.Exists(path) && File.ReadAllText(path) == content)
    {
        continue;
    }

    stale.Add(name);
    if (!check)
    {
        File.WriteAllText(path, content);
    }
}

foreach (var orphan in Directory.GetFiles(outputFolder, "*.cs").Where(path => !files.ContainsKey(Path.GetFileName(path))))
{
    stale.Add(Path.GetFileName(orphan) + " (no schema)");
    if (!check)
    {
        File.Delete(orphan);
    }
}

Console.WriteLine($"{schemaFiles.Count} schema(s), {files.Count} generated file(s) in {outputFolder}");
foreach (var name in stale)
{
    Console.WriteLine((check ? "stale: " : "updated: ") + name);
}

return check && stale.Count > 0 ? 1 : 0;

static string? FindRepositoryRoot(string start)
{
    for (var directory = new DirectoryInfo(start); directory is not null; directory = directory.Parent)
    {
        if (File.Exists(Path.Combine(directory.FullName, "KafkaClicks.sln")))
        {
            return directory.FullName;
        }
    }

    return null;
}
