using System.Reflection;
using System.Text.Json.Serialization.Metadata;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Builder;
using Microsoft.AspNetCore.Http;
using Microsoft.AspNetCore.Http.Metadata;
using Microsoft.AspNetCore.Mvc;

namespace KafkaClicks.Query;

/// <summary>
/// 200 with a <typeparamref name="T"/> as JSON: an answer serialized already (as the response cache keeps it) or a value
/// written with its source-generated contract. A handler returning it declares the answer in the OpenAPI document.
/// </summary>
public sealed class JsonAnswer<T> : IResult, IStatusCodeHttpResult, IEndpointMetadataProvider
{
    private readonly IResult _result;

    /// <summary>An answer serialized already (UTF-8 JSON of a <typeparamref name="T"/>).</summary>
    public JsonAnswer(byte[] utf8Json) => _result = Results.Bytes(utf8Json, "application/json");

    public JsonAnswer(T value, JsonTypeInfo<T> type) => _result = Results.Json(value, type);

    public int? StatusCode => StatusCodes.Status200OK;

    public Task ExecuteAsync(HttpContext httpContext) => _result.ExecuteAsync(httpContext);

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) =>
        builder.Metadata.Add(new ProducesResponseTypeMetadata(StatusCodes.Status200OK, typeof(T), ["application/json"]));
}

/// <summary>
/// A ProblemDetails answer (<see cref="Problems.Problem"/>) whose status is part of its type, so that the union a handler
/// returns declares every status it can answer in the OpenAPI document.
/// </summary>
public abstract class StatusProblem : IResult, IStatusCodeHttpResult
{
    private readonly IResult _problem;

    private protected StatusProblem(int status, string reason, string title, string? detail)
    {
        StatusCode = status;
        _problem = Problems.Problem(status, reason, title, detail);
    }

    public int? StatusCode { get; }

    public Task ExecuteAsync(HttpContext httpContext) => _problem.ExecuteAsync(httpContext);

    /// <summary>Declares <paramref name="status"/> as a ProblemDetails answer of the endpoint.</summary>
    public static void Declare(EndpointBuilder builder, int status) =>
        builder.Metadata.Add(new ProducesResponseTypeMetadata(status, typeof(ProblemDetails), ["application/problem+json"]));
}

/// <summary>400: a parameter is not valid; the reason names which rule it breaks.</summary>
public sealed class BadRequestProblem(string reason, string title) : StatusProblem(StatusCodes.Status400BadRequest, reason, title, null), IEndpointMetadataProvider
{
    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status400BadRequest);
}

/// <summary>404: no such ad or advertiser, or one the caller may not see (so that other advertisers' ids cannot be probed).</summary>
public sealed class NotFoundProblem : StatusProblem, IEndpointMetadataProvider
{
    private NotFoundProblem(string reason, string title) : base(StatusCodes.Status404NotFound, reason, title, null)
    {
    }

    // A new answer per request: writing a ProblemDetails completes it (the request's traceId), so none is shared.
    public static NotFoundProblem UnknownAd() => new("unknown-ad", "No such ad.");

    public static NotFoundProblem UnknownAdvertiser() => new("unknown-advertiser", "No such advertiser.");

    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status404NotFound);
}

/// <summary>
/// 503 query-timeout: a statement of the query ran longer than <c>Query:StatementTimeout</c> (a table locked by a
/// migration or a maintenance job, a range far larger than usual) and was cancelled. Declared with the 503 every route
/// that queries the database answers when it is overloaded.
/// </summary>
public sealed class QueryTimeoutProblem()
    : StatusProblem(StatusCodes.Status503ServiceUnavailable, "query-timeout", "The query took longer than the database allows; retry shortly or ask for less.", null)
{
    /// <summary>Whether <paramref name="e"/> is a statement cancelled by its timeout (client side, or the server's).</summary>
    public static bool IsTimeout(Exception e) =>
        e is Npgsql.NpgsqlException { InnerException: TimeoutException } or Npgsql.PostgresException { SqlState: Npgsql.PostgresErrorCodes.QueryCanceled };
}

/// <summary>503 overloaded: no database slot freed up in time (<c>Query:QueueLimit</c>, <c>Query:QueueTimeout</c>).</summary>
public sealed class OverloadedProblem(string detail)
    : StatusProblem(StatusCodes.Status503ServiceUnavailable, "overloaded", "Too many queries are waiting for the database; retry shortly.", detail), IEndpointMetadataProvider
{
    static void IEndpointMetadataProvider.PopulateMetadata(MethodInfo method, EndpointBuilder builder) => Declare(builder, StatusCodes.Status503ServiceUnavailable);
}
