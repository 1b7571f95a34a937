using System.Collections.Frozen;
using System.Diagnostics.CodeAnalysis;
using System.Reflection;
using Avro;

namespace KafkaClicks.Contracts;

/// <summary>
/// The Avro schemas bundled with this library (schemas/*.avsc, embedded as resources), parsed once per process.
/// </summary>
public static class ContractSchemas
{
    private const string ResourcePrefix = "KafkaClicks.Schemas.";
    private const string PreviousResourcePrefix = "KafkaClicks.PreviousSchemas.";

    private static readonly FrozenDictionary<string, RecordSchema> _byName = Load();
    private static readonly FrozenDictionary<string, IReadOnlyList<RecordSchema>> _previousByName = LoadPrevious();

    /// <summary>The <c>KafkaClicks.Contracts.ClickEvent</c> schema (topics clicks.raw and clicks.late).</summary>
    public static RecordSchema ClickEvent { get; } = Get("KafkaClicks.Contracts.ClickEvent");

    /// <summary>The <c>KafkaClicks.Contracts.MinuteCount</c> schema (topic clicks.minute).</summary>
    public static RecordSchema MinuteCount { get; } = Get("KafkaClicks.Contracts.MinuteCount");

    /// <summary>The <c>KafkaClicks.Contracts.FinalProgress</c> schema (the aggregator's progress markers on clicks.minute).</summary>
    public static RecordSchema FinalProgress { get; } = Get("KafkaClicks.Contracts.FinalProgress");

    /// <summary>Every bundled schema, ordered by full name.</summary>
    public static IReadOnlyList<RecordSchema> All { get; } =
        [.. _byName.Values.Distinct().OrderBy(s => s.Fullname, StringComparer.Ordinal)];

    /// <summary>A bundled schema by full name (<c>KafkaClicks.Contracts.ClickEvent</c>) or simple name (<c>ClickEvent</c>).</summary>
    /// <exception cref="KeyNotFoundException">No bundled schema has that name.</exception>
    public static RecordSchema Get(string name) =>
        TryGet(name, out var schema) ? schema : throw new KeyNotFoundException($"No bundled Avro schema named '{name}'.");

    /// <summary>Looks up a bundled schema by full or simple name.</summary>
    public static bool TryGet(string name, [NotNullWhen(true)] out RecordSchema? schema)
    {
        ArgumentNullException.ThrowIfNull(name);
        return _byName.TryGetValue(name, out schema);
    }

    /// <summary>
    /// Earlier versions of a bundled schema (schemas/previous/*.avsc, in file-name order), by full name: the writer
    /// schemas this version still reads, so records written before an upgrade decode. Empty for a schema that never
    /// changed.
    /// </summary>
    public static IReadOnlyList<RecordSchema> PreviousVersions(string fullName)
    {
        ArgumentNullException.ThrowIfNull(fullName);
        return _previousByName.TryGetValue(fullName, out var previous) ? previous : [];
    }

    private static FrozenDictionary<string, IReadOnlyList<RecordSchema>> LoadPrevious()
    {
        var assembly = typeof(ContractSchemas).Assembly;
        return assembly.GetManifestResourceNames()
            .Where(resource => IsSchemaResource(resource, PreviousResourcePrefix))
            .Order(StringComparer.Ordinal)
            .Select(resource => Parse(assembly, resource))
            .GroupBy(schema => schema.Fullname, StringComparer.Ordinal)
            .ToFrozenDictionary(group => group.Key, group => (IReadOnlyList<RecordSchema>)[.. group], StringComparer.Ordinal);
    }

    private static FrozenDictionary<string, RecordSchema> Load()
    {
        var assembly = typeof(ContractSchemas).Assembly;
        var byName = new Dictionary<string, RecordSchema>(StringComparer.Ordinal);
        foreach (var resource in assembly.GetManifestResourceNames().Where(resource => IsSchemaResource(resource, ResourcePrefix)))
        {
            var schema = Parse(assembly, resource);
            if (!byName.TryAdd(schema.Fullname, schema) || !byName.TryAdd(schema.Name, schema))
            {
                throw new InvalidOperationException($"Two bundled schemas are named {schema.Fullname} or {schema.Name}.");
            }
        }

        return byName.ToFrozenDictionary(StringComparer.Ordinal);
    }

    private static bool IsSchemaResource(string resource, string prefix) =>
        resource.StartsWith(prefix, StringComparison.Ordinal) && resource.EndsWith(".avsc", StringComparison.Ordinal);

    private static RecordSchema Parse(Assembly assembly, string resource)
    {
        using var stream = assembly.GetManifestResourceStream(resource)
            ?? throw new InvalidOperationException($"Embedded schema {resource} is missing.");
        using var reader = new StreamReader(stream);
        return Schema.Parse(reader.ReadToEnd()) as RecordSchema
            ?? throw new InvalidOperationException($"Embedded schema {resource} is not a record schema.");
    }
}
