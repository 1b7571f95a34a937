using System.Collections.Frozen;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace KafkaClicks.Query;

/// <summary>
/// The dashboard page and its scripts, embedded in this assembly at build time (the charting library is vendored
/// from npm by the build, see the project file), so the page works offline and nothing is fetched from a CDN.
/// </summary>
internal static class DashboardAssets
{
    private const string ResourcePrefix = "KafkaClicks.Dashboard.";

    private static readonly FrozenDictionary<string, (byte[] Body, string ContentType)> Assets = Load();

    public static void Map(IEndpointRouteBuilder app)
    {
        app.MapGet("/", () => Serve("index.html")).ExcludeFromDescription();
        app.MapGet("/dashboard/{file}", (string file) => Serve(file)).ExcludeFromDescription();
    }

    private static IResult Serve(string file)
    {
        if (!Assets.TryGetValue(file, out var asset))
        {
            return Problems.Problem(404, "not-found", "No such dashboard file.");
        }

        return Results.Bytes(asset.Body, asset.ContentType);
    }

    private static FrozenDictionary<string, (byte[], string)> Load()
    {
        var assembly = typeof(DashboardAssets).Assembly;
        var assets = new Dictionary<string, (byte[], string)>(StringComparer.Ordinal);
        foreach (var name in assembly.GetManifestResourceNames().Where(n => n.StartsWith(ResourcePrefix, StringComparison.Ordinal)))
        {
            using var stream = assembly.GetManifestResourceStream(name)!;
            using var copy = new MemoryStream();
            stream.CopyTo(copy);
            var file = name[ResourcePrefix.Length..];
            assets[file] = (copy.ToArray(), Path.GetExtension(file) switch
            {
                ".html" => "text/html; charset=utf-8",
                ".js" => "text/javascript; charset=utf-8",
                ".css" => "text/css; charset=utf-8",
                _ => "application/octet-stream",
            });
        }

        return assets.ToFrozenDictionary(StringComparer.Ordinal);
    }
}
