using System.Runtime.CompilerServices;
using KafkaClicks.Contracts;
using KafkaClicks.Contracts.CodeGen;

namespace KafkaClicks.UnitTests.Contracts;

public class GeneratedCodeTests
{
    [Fact]
    public void CommittedGeneratedFilesMatchTheSchemas()
    {
        var expected = ContractsCodeGenerator.Generate(ContractSchemas.All);
        var folder = Path.Combine(RepositoryRoot(), "schemas", "KafkaClicks.Contracts", ContractsCodeGenerator.GeneratedFolder);
        var committed = Directory.GetFiles(folder, "*.cs").Select(Path.GetFileName).Order(StringComparer.Ordinal).ToList();

        Assert.Equal(expected.Keys, committed);
        foreach (var (name, content) in expected)
        {
            var actual = File.ReadAllText(Path.Combine(folder, name)).Replace("\r\n", "\n", StringComparison.Ordinal);
            Assert.True(
                content == actual,
                $"{name} is stale: run `dotnet run --project schemas/KafkaClicks.Contracts.CodeGen` and commit the result.");
        }
    }

    [Fact]
    public void GeneratedClassesUsePascalCasePropertiesAndUtcDatetimeTimestamps()
    {
        Assert.Equal(typeof(string), typeof(ClickEvent).GetProperty(nameof(ClickEvent.ImpressionId))!.PropertyType);
        Assert.Equal(typeof(long), typeof(ClickEvent).GetProperty(nameof(ClickEvent.AdId))!.PropertyType);
        Assert.Equal(typeof(int), typeof(ClickEvent).GetProperty(nameof(ClickEvent.Salt))!.PropertyType);
        Assert.Equal(typeof(DateTime), typeof(ClickEvent).GetProperty(nameof(ClickEvent.ClickedAt))!.PropertyType);
        Assert.Equal(typeof(DateTime), typeof(ClickEvent).GetProperty(nameof(ClickEvent.ImpressionAt))!.PropertyType);
        Assert.Equal(typeof(DateTime), typeof(MinuteCount).GetProperty(nameof(MinuteCount.WindowStart))!.PropertyType);
        Assert.Equal(typeof(bool), typeof(MinuteCount).GetProperty(nameof(MinuteCount.Final))!.PropertyType);
    }

    [Fact]
    public void NewRecordsStartWithTheSchemaDefaults()
    {
        var click = new ClickEvent();

        Assert.True(click.DedupeChecked);
        Assert.Equal(string.Empty, click.IngestInstance);
    }

    [Fact]
    public void GeneratedSchemaIsTheBundledSchema()
    {
        Assert.Equal(AvroWireFormat.Fingerprint(ContractSchemas.ClickEvent), AvroWireFormat.Fingerprint(ClickEvent._SCHEMA));
        Assert.Equal(AvroWireFormat.Fingerprint(ContractSchemas.MinuteCount), AvroWireFormat.Fingerprint(MinuteCount._SCHEMA));
        Assert.Same(ContractSchemas.ClickEvent, ContractSchemas.Get("ClickEvent"));
        Assert.Same(ContractSchemas.MinuteCount, ContractSchemas.Get("KafkaClicks.Contracts.MinuteCount"));
        Assert.Equal(AvroWireFormat.Fingerprint(ContractSchemas.FinalProgress), AvroWireFormat.Fingerprint(FinalProgress._SCHEMA));
        Assert.Equal(3, ContractSchemas.All.Count);
    }

    // The source path finds the repository wherever the test assembly runs; the output folder is the fallback
    // for builds that map source paths away (deterministic CI builds).
    private static string RepositoryRoot([CallerFilePath] string sourceFile = "")
    {
        foreach (var start in new[] { Path.GetDirectoryName(sourceFile), AppContext.BaseDirectory })
        {
            for (var directory = string.IsNullOrEmpty(start) ? null : new DirectoryInfo(start); directory is not null; directory = directory.Parent)
            {
                if (File.Exists(Path.Combine(directory.FullName, "KafkaClicks.sln")))
                {
                    return directory.FullName;
                }
            }
        }

        throw new InvalidOperationException("KafkaClicks.sln not found above " + sourceFile + " or " + AppContext.BaseDirectory);
    }
}
