using System.Text.Json;
using System.Text.Json.Serialization;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Ingest;

/// <summary>Body of POST /v1/impressions.</summary>
public sealed record ImpressionRequest(long AdId);

/// <summary>Answer of POST /v1/impressions: the link to put in the creative.</summary>
public sealed record ImpressionResponse(string ImpressionId, string Token, string ClickUrl, DateTimeOffset ExpiresAt);

/// <summary>Body of POST /v1/clicks.</summary>
public sealed record ClickRequest(string? Token);

[JsonSerializable(typeof(ImpressionRequest))]
[JsonSerializable(typeof(ImpressionResponse))]
[JsonSerializable(typeof(ClickRequest))]
[JsonSourceGenerationOptions(JsonSerializerDefaults.Web)]
internal sealed partial class IngestJsonContext : JsonSerializerContext;

/// <summary>The ingest role's HTTP surface.</summary>
public static class IngestEndpoints
{
    public static IEndpointRouteBuilder MapIngest(this IEndpointRouteBuilder app)
    {
        app.MapPost("/v1/impressions", MintAsync).WithName("MintImpression").WithTags("Ingest");
        app.MapGet("/c/{token}", (string token, HttpContext context, ClickHandler handler, CancellationToken ct) => handler.HandleAsync(token, context, ct))
            .WithName("ClickLink").WithTags("Ingest");
        app.MapPost("/v1/clicks", ClickBeaconAsync).WithName("ClickBeacon").WithTags("Ingest");
        return app;
    }

    private static async Task<IResult> ClickBeaconAsync(HttpRequest request, ClickHandler handler, IOptions<IngestOptions> options, CancellationToken ct)
    {
        var (body, problem, rejected) = await ReadJsonAsync(request, IngestJsonContext.Default.ClickRequest, options.Value.MaxRequestBytes, ct);
        if (problem is not null)
        {
            IngestTelemetry.Click(rejected);
            return problem;
        }

        return await handler.HandleAsync(body!.Token, request.HttpContext, ct);
    }

    private static async Task<IResult> MintAsync(HttpRequest request, FrontendAuthenticator frontends, ImpressionMinter minter, AdDirectory ads,
        IOptions<IngestOptions> options, CancellationToken ct)
    {
        if (frontends.Refusal(request.HttpContext) is { } refusal)
        {
            return refusal;
        }

        var (body, problem, _) = await ReadJsonAsync(request, IngestJsonContext.Default.ImpressionRequest, options.Value.MaxRequestBytes, ct);
        if (problem is not null)
        {
            return problem;
        }

        AdRoute? ad;
        try
        {
            ad = await ads.FindAsync(body!.AdId, ct);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            return Problems.Problem(503, "ad-lookup-unavailable", "The ad cannot be looked up right now; retry shortly.");
        }

        if (ad is null)
        {
            return Problems.Problem(404, "unknown-ad", $"Ad {body.AdId} does not exist or was removed.");
        }

        if (ad.Location is null)
        {
            return ClickHandler.UnroutableAd();
        }

        var minted = minter.Mint(ad.AdId);
        IngestTelemetry.Impression();
        // Outside Development the validator has made sure PublicBaseUrl is set: the Host header is the caller's choice.
        var baseUrl = options.Value.PublicBaseUrl is { Length: > 0 } configured
            ? configured.TrimEnd('/')
            : $"{request.Scheme}://{request.Host}";
        return Results.Json(new ImpressionResponse(minted.ImpressionId, minted.Token, $"{baseUrl}/c/{minted.Token}", minted.ExpiresAt),
            IngestJsonContext.Default.ImpressionResponse);
    }

    /// <summary>
    /// Reads a small JSON body with a hard size limit; bad input becomes a ProblemDetails result (and the outcome a
    /// click refused for it counts as), never an exception.
    /// </summary>
    private static async Task<(T? Body, IResult? Problem, ClickOutcome Rejected)> ReadJsonAsync<T>(
        HttpRequest request, System.Text.Json.Serialization.Metadata.JsonTypeInfo<T> type, int maxBytes, CancellationToken ct)
        where T : class
    {
        if (request.ContentLength > maxBytes)
        {
            return (null, Problems.Problem(413, "request-too-large", $"The request body is larger than {maxBytes} bytes."), ClickOutcome.Oversized);
        }

        if (!request.HasJsonContentType())
        {
            return (null, Problems.Problem(415, "unsupported-media-type", "The request body must be application/json."), ClickOutcome.Malformed);
        }

        var buffer = new byte[maxBytes + 1];
        var length = 0;
        int read;
        while (length < buffer.Length && (read = await request.Body.ReadAsync(buffer.AsMemory(length), ct)) > 0)
        {
            length += read;
        }

        if (length > maxBytes)
        {
            return (null, Problems.Problem(413, "request-too-large", $"The request body is larger than {maxBytes} bytes."), ClickOutcome.Oversized);
        }

        try
        {
            var body = JsonSerializer.Deserialize(buffer.AsSpan(0, length), type);
            if (body is not null)
            {
                return (body, null, default);
            }
        }
        catch (JsonException)
        {
        }

        return (null, Problems.Problem(400, "malformed-request", "The request body is not valid JSON of the expected shape."), ClickOutcome.Malformed);
    }
}
