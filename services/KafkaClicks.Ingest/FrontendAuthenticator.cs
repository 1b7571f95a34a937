using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>
/// Who may mint impressions: a caller presenting one of <c>Ingest:FrontendApiKeys</c> (compared in constant time),
/// within its key's rate limit; a caller without a valid key gets 401 within its network's anonymous limit, 429 beyond.
/// </summary>
public sealed class FrontendAuthenticator : IDisposable
{
    private readonly byte[][] _keyHashes;
    private readonly CallerRateLimits _limits;

    public FrontendAuthenticator(IOptions<IngestOptions> options)
    {
        _keyHashes = options.Value.FrontendApiKeys.Select(BearerKeys.Hash).ToArray();
        _limits = new CallerRateLimits("ingest", options.Value.RateLimits);
    }

    /// <summary>Null when the request may go on; else the answer to give (401 or 429, as ProblemDetails).</summary>
    public IResult? Refusal(HttpContext context)
    {
        var key = BearerKeys.Presented(context.Request) is { } presented ? BearerKeys.IndexOf(presented, _keyHashes) : -1;
        if (key < 0)
        {
            return _limits.TryAnonymous(context)
                ? Problems.Problem(401, "unauthenticated", "A frontend API key is required (Authorization: Bearer <key>).")
                : CallerRateLimits.TooManyRequests(context);
        }

        return _limits.TryKey(key.ToString(System.Globalization.CultureInfo.InvariantCulture)) ? null : CallerRateLimits.TooManyRequests(context);
    }

    public void Dispose() => _limits.Dispose();
}
