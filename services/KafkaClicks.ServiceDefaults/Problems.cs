using Microsoft.AspNetCore.Http;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// ProblemDetails responses with a machine-readable <c>type</c> per failure reason
/// (<c>https://kafkaclicks.dev/problems/{reason}</c>), so clients branch on the reason, not on the text.
/// </summary>
public static class Problems
{
    public const string TypePrefix = "https://kafkaclicks.dev/problems/";

    public static IResult Problem(int status, string reason, string title, string? detail = null) =>
        Results.Problem(statusCode: status, type: TypePrefix + reason, title: title, detail: detail,
            extensions: new Dictionary<string, object?> { ["reason"] = reason });
}
