using System.Text.Json.Nodes;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.OpenApi;

namespace KafkaClicks.Query;

/// <summary>Adds the bearer API-key scheme, a description and an example answer to each query operation of the OpenAPI document.</summary>
internal sealed class QueryOpenApi : IOpenApiDocumentTransformer, IOpenApiOperationTransformer
{
    private const string Scheme = ApiKeyAuthentication.Scheme;

    private static readonly Dictionary<string, string> Examples = new(StringComparer.Ordinal)
    {
        ["AdClicks"] = """
            {"adId":3,"granularity":"1h","tz":"UTC","from":"2026-11-29T10:00:00+00:00","to":"2026-11-29T13:00:00+00:00",
             "completeThrough":"2026-11-29T12:41:00+00:00","final":false,"total":1770,
             "points":[{"t":"2026-11-29T10:00:00+00:00","clicks":600,"final":true},
                       {"t":"2026-11-29T11:00:00+00:00","clicks":720,"final":true},
                       {"t":"2026-11-29T12:00:00+00:00","clicks":450,"final":false}]}
            """,
        ["AdvertiserClicks"] = """
            {"advertiserId":1,"granularity":"1d","tz":"Europe/Paris","from":"2026-11-26T23:00:00+00:00","to":"2026-11-28T23:00:00+00:00",
             "completeThrough":"2026-11-29T12:41:00+00:00","final":true,"total":30,
             "points":[{"t":"2026-11-26T23:00:00+00:00","clicks":12,"final":true},{"t":"2026-11-27T23:00:00+00:00","clicks":18,"final":true}],
             "ads":[{"adId":1,"total":20,"points":[{"t":"2026-11-26T23:00:00+00:00","clicks":8,"final":true},{"t":"2026-11-27T23:00:00+00:00","clicks":12,"final":true}]},
                    {"adId":2,"total":10,"points":[{"t":"2026-11-26T23:00:00+00:00","clicks":4,"final":true},{"t":"2026-11-27T23:00:00+00:00","clicks":6,"final":true}]}]}
            """,
        ["TopAds"] = """
            {"window":"5m","advertiserId":null,"from":"2026-11-29T12:38:00+00:00","to":"2026-11-29T12:43:00+00:00",
             "completeThrough":"2026-11-29T12:41:00+00:00","final":false,
             "ads":[{"adId":1,"advertiserId":1,"clicks":412},{"adId":11,"advertiserId":2,"clicks":97}]}
            """,
        ["Advertisers"] = """
            {"advertisers":[{"advertiserId":1,"name":"Demo advertiser 1","ads":10}],"next":null}
            """,
        ["AdvertiserAds"] = """
            {"advertiserId":1,"ads":[{"adId":1,"redirectUrl":"https://shop.example/winter","deleted":false},
                                     {"adId":2,"redirectUrl":"https://shop.example/sale","deleted":false}],"next":2}
            """,
        ["ReconciliationRuns"] = """
            {"runs":[{"runId":42,"from":"2026-11-29T11:00:00+00:00","to":"2026-11-29T12:00:00+00:00","adId":null,"status":"succeeded",
                      "rawClicks":1804211,"dbClicks":1804198,"windowsChecked":912044,"windowsCorrected":9,
                      "startedAt":"2026-11-29T12:15:00+00:00","finishedAt":"2026-11-29T12:15:06+00:00"}]}
            """,
    };

    private static readonly Dictionary<string, string> ParameterExamples = new(StringComparer.Ordinal)
    {
        ["from"] = "2026-11-29T10:00:00Z",
        ["to"] = "2026-11-29T13:00:00Z",
        ["granularity"] = "1h",
        ["tz"] = "Europe/Paris",
        ["breakdown"] = "ad",
        ["window"] = "5m",
        ["limit"] = "10",
        ["after"] = "2",
        ["last"] = "50",
        ["q"] = "shop.example/winter",
    };

    public Task TransformAsync(OpenApiDocument document, OpenApiDocumentTransformerContext context, CancellationToken cancellationToken)
    {
        document.Info.Description =
            "Query API: click counts per ad and advertiser at 1m, 5m, 15m, 1h and 1d granularity, and the most clicked ads. Times are UTC "
            + "(ISO-8601); day buckets may follow a time zone (tz). completeThrough: every minute before it has its final count; "
            + "a point is final when its bucket ends at or before it. Errors are application/problem+json with a machine-readable reason.";
        document.Components ??= new OpenApiComponents();
        document.Components.SecuritySchemes ??= new Dictionary<string, IOpenApiSecurityScheme>();
        document.Components.SecuritySchemes[Scheme] = new OpenApiSecurityScheme
        {
            Type = SecuritySchemeType.Http,
            Scheme = "bearer",
            Description = "An advertiser's API key (sees only its own advertiser) or an admin key (sees all).",
        };
        document.Security ??= [];
        document.Security.Add(new OpenApiSecurityRequirement { [new OpenApiSecuritySchemeReference(Scheme, document)] = [] });
        return Task.CompletedTask;
    }

    public Task TransformAsync(OpenApiOperation operation, OpenApiOperationTransformerContext context, CancellationToken cancellationToken)
    {
        if (operation.OperationId is { } id && Examples.TryGetValue(id, out var example)
            && operation.Responses?.TryGetValue("200", out var ok) == true && ok.Content?.TryGetValue("application/json", out var media) == true)
        {
            media.Example = JsonNode.Parse(example);
        }

        foreach (var parameter in operation.Parameters?.OfType<OpenApiParameter>() ?? [])
        {
            if (parameter.Name is { } name && ParameterExamples.TryGetValue(name, out var value))
            {
                parameter.Example = JsonValue.Create(value);
            }
        }

        return Task.CompletedTask;
    }
}
