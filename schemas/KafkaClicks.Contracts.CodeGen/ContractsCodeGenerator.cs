using System.CodeDom;
using System.CodeDom.Compiler;
using System.Globalization;
using System.Reflection;
using System.Text;
using System.Text.RegularExpressions;
using Avro;
using Microsoft.CSharp;
using Newtonsoft.Json.Linq;

namespace KafkaClicks.Contracts.CodeGen;

/// <summary>
/// Turns the contract schemas into C# source with Apache.Avro's <see cref="Avro.CodeGen"/>, then makes the
/// output deterministic and idiomatic: PascalCase properties, field initialisers for schema defaults, an
/// <c>&lt;auto-generated&gt;</c> header without the host process name, spaces and LF line endings.
/// </summary>
/// <remarks>
/// This file is compiled into the generator and, linked, into the contracts library so that a unit test can
/// regenerate in memory and compare with the committed files.
/// </remarks>
internal static class ContractsCodeGenerator
{
    /// <summary>Folder, relative to the contracts project, that holds the generated files.</summary>
    public const string GeneratedFolder = "Generated";

    private const string ToolName = "KafkaClicks.Contracts.CodeGen";

    private static readonly string[] _reservedMemberNames = ["Schema", "Get", "Put", "_SCHEMA"];

    /// <summary>Generates one C# file per named type of <paramref name="schemas"/>.</summary>
    /// <param name="schemas">Parsed contract schemas; their order does not matter.</param>
    /// <returns>File name (e.g. <c>ClickEvent.cs</c>) to file content, ordered by file name.</returns>
    public static SortedDictionary<string, string> Generate(IEnumerable<Schema> schemas)
    {
        ArgumentNullException.ThrowIfNull(schemas);

        var generator = new Avro.CodeGen();
        var records = new Dictionary<string, RecordSchema>(StringComparer.Ordinal);
        foreach (var schema in schemas.OrderBy(s => s.Fullname, StringComparer.Ordinal))
        {
            generator.AddSchema(schema);
            if (schema is RecordSchema record)
            {
                records[CodeGenUtil.Instance.Mangle(record.Name)] = record;
            }
        }

        var compileUnit = generator.GenerateCode();
        var avroVersion = AvroPackageVersion();
        var files = new SortedDictionary<string, string>(StringComparer.Ordinal);
        using var provider = new CSharpCodeProvider();
        var options = new CodeGeneratorOptions { BracingStyle = "C", IndentString = "    ", BlankLinesBetweenMembers = false };

        foreach (CodeNamespace generatedNamespace in compileUnit.Namespaces)
        {
            foreach (CodeTypeDeclaration type in generatedNamespace.Types)
            {
                if (records.TryGetValue(type.Name, out var record))
                {
                    Idiomise(type, record);
                }

                StampGeneratedCodeAttribute(type, avroVersion);

                var single = new CodeNamespace(generatedNamespace.Name);
                foreach (var import in CodeGenUtil.Instance.NamespaceImports)
                {
                    single.Imports.Add(import);
                }

                single.Types.Add(type);
                using var writer = new StringWriter(CultureInfo.InvariantCulture) { NewLine = "\n" };
                provider.GenerateCodeFromNamespace(single, writer, options);
                var fileName = CodeGenUtil.Instance.UnMangle(type.Name) + ".cs";
                files[fileName] = Header(generatedNamespace.Name + "." + CodeGenUtil.Instance.UnMangle(type.Name), avroVersion)
                    + Normalise(writer.ToString());
            }
        }

        return files;
    }

    /// <summary>PascalCase for a schema field name: <c>impressionId</c> becomes <c>ImpressionId</c>.</summary>
    public static string PropertyName(string fieldName) =>
        string.Concat(char.ToUpperInvariant(fieldName[0]).ToString(), fieldName[1..]);

    private static void Idiomise(CodeTypeDeclaration type, RecordSchema record)
    {
        var renames = new Dictionary<string, string>(StringComparer.Ordinal);
        var taken = new HashSet<string>(_reservedMemberNames, StringComparer.Ordinal) { record.Name };
        foreach (var field in record.Fields)
        {
            var newName = PropertyName(field.Name);
            if (!taken.Add(newName))
            {
                throw new CodeGenException($"Field '{field.Name}' of {record.Fullname} maps to the property name '{newName}', which clashes with another member.");
            }

            renames[CodeGenUtil.Instance.Mangle(field.Name)] = newName;
        }

        foreach (CodeTypeMember member in type.Members)
        {
            switch (member)
            {
                case CodeMemberProperty property when renames.TryGetValue(property.Name, out var newName):
                    property.Name = newName;
                    break;
                case CodeMemberField backingField when backingField.Name.StartsWith('_'):
                    var field = record.Fields.FirstOrDefault(f => "_" + f.Name == backingField.Name);
                    if (field?.DefaultValue is { } defaultValue && DefaultLiteral(field.Schema, defaultValue) is { } literal)
                    {
                        backingField.InitExpression = literal;
                    }

                    break;
                case CodeMemberMethod { Name: "Get" or "Put" } method:
                    foreach (CodeStatement statement in method.Statements)
                    {
                        if (statement is CodeExpressionStatement { Expression: CodeSnippetExpression snippet })
                        {
                            foreach (var (oldName, newName) in renames)
                            {
                                snippet.Value = Regex.Replace(snippet.Value, $@"this\.{Regex.Escape(oldName)}(?=[ ;])", "this." + newName);
                            }
                        }
                    }

                    break;
            }
        }
    }

    private static CodePrimitiveExpression? DefaultLiteral(Schema schema, JToken value) => schema.Tag switch
    {
        Schema.Type.Boolean => new CodePrimitiveExpression(value.Value<bool>()),
        Schema.Type.Int => new CodePrimitiveExpression(value.Value<int>()),
        Schema.Type.Long => new CodePrimitiveExpression(value.Value<long>()),
        Schema.Type.Float => new CodePrimitiveExpression(value.Value<float>()),
        Schema.Type.Double => new CodePrimitiveExpression(value.Value<double>()),
        Schema.Type.String => new CodePrimitiveExpression(value.Value<string>()),
        _ => null,
    };

    private static string AvroPackageVersion()
    {
        var informational = typeof(Avro.CodeGen).Assembly.GetCustomAttribute<AssemblyInformationalVersionAttribute>()?.InformationalVersion;
        return informational?.Split('+')[0] ?? typeof(Avro.CodeGen).Assembly.GetName().Version?.ToString() ?? "unknown";
    }

    private static void StampGeneratedCodeAttribute(CodeTypeDeclaration type, string avroVersion)
    {
        // Avro stamps the host process name, which differs between the generator and the test host.
        foreach (CodeAttributeDeclaration attribute in type.CustomAttributes)
        {
            if (attribute.AttributeType.BaseType.EndsWith("GeneratedCodeAttribute", StringComparison.Ordinal))
            {
                attribute.Arguments.Clear();
                attribute.Arguments.Add(new CodeAttributeArgument(new CodePrimitiveExpression(ToolName)));
                attribute.Arguments.Add(new CodeAttributeArgument(new CodePrimitiveExpression(avroVersion)));
            }
        }
    }

    private static string Header(string typeName, string avroVersion) =>
        $"""
        // <auto-generated>
        //     {typeName}, generated from schemas/*.avsc by {ToolName} with Apache.Avro {avroVersion} CodeGen.
        //     Do not edit: change the schema, then run `dotnet run --project schemas/{ToolName}`.
        // </auto-generated>


        """;

    private static string Normalise(string code)
    {
        var lines = code.Replace("\r\n", "\n", StringComparison.Ordinal)
            .Replace("\t", "    ", StringComparison.Ordinal)
            .Split('\n')
            .Select(line => line.TrimEnd());
        var builder = new StringBuilder();
        foreach (var line in lines)
        {
            builder.Append(line).Append('\n');
        }

        return builder.ToString().TrimEnd('\n') + "\n";
    }
}
