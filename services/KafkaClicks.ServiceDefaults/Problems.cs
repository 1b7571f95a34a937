using System.Diagnostics.Metrics;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Routing;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// ProblemDetails responses with a machine-readable <c>type</c> per failure reason
/// (<c>https://kafkaclicks.dev/problems/{reason}</c>), so clients branch on the reason, not on the text.
/// </summary>
public static class Problems
{
    public const string TypePrefix = "https://kafkaclicks.dev/problems/";

    /// <summary>The meter of the HTTP surface every role shares.</summary>
    internal static readonly Meter Meter = new(ServiceDefaultsExtensions.MeterPrefix + "Http");

    private static readonly Counter<long> Answered = Meter.CreateCounter<long>(
        "kafkaclicks.http.problems", "{response}", "Error answers (ProblemDetails) by reason, status and route.");

    public static IResult Problem(int status, string reason, string title, string? detail = null) =>
        Results.Problem(statusCode: status, type: TypePrefix + reason, title: title, detail: detail,
            extensions: new Dictionary<string, object?> { ["reason"] = reason });

    /// <summary>
    /// Runs for every ProblemDetails answer of the process, ours and the framework's (unknown routes, wrong methods,
    /// unhandled errors): gives the framework's a reason too, and counts each answer in
    /// <c>kafkaclicks_http_problems_total{reason, status, route}</c> (route: the endpoint's pattern, or "unmatched").
    /// </summary>
    public static void Describe(ProblemDetailsContext context)
    {
        var problem = context.ProblemDetails;
        var status = problem.Status ?? context.HttpContext.Response.StatusCode;
        if (problem.Extensions.TryGetValue("reason", out var given) && given is string { Length: > 0 } reason)
        {
            // Ours: the reason and its type are set already.
        }
        else
        {
            reason = status switch
            {
                StatusCodes.Status404NotFound => "not-found",
                StatusCodes.Status405MethodNotAllowed => "method-not-allowed",
                StatusCodes.Status413PayloadTooLarge => "request-too-large",
                StatusCodes.Status415UnsupportedMediaType => "unsupported-media-type",
                >= 500 => "internal-error",
                _ => "bad-request",
            };
            problem.Type = TypePrefix + reason;
            problem.Extensions["reason"] = reason;
        }

        var route = (context.HttpContext.GetEndpoint() as RouteEndpoint)?.RoutePattern.RawText ?? "unmatched";
        Answered.Add(1,
            new KeyValuePair<string, object?>("reason", reason),
            new KeyValuePair<string, object?>("status", status),
            new KeyValuePair<string, object?>("route", route));
    }
}
