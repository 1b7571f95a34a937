using System.Text.RegularExpressions;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>
/// Checks the options at start, with a message that names the key that is wrong. <paramref name="requirePublicBaseUrl"/>:
/// the process mints click links and is not in the Development environment, so they must not be built from the
/// caller's Host header.
/// </summary>
public sealed partial class IngestOptionsValidator(bool requirePublicBaseUrl = false) : IValidateOptions<IngestOptions>
{
    public ValidateOptionsResult Validate(string? name, IngestOptions options)
    {
        var failures = new List<string>();
        var tokens = options.Tokens;
        if (tokens.Keys.Count == 0)
        {
            failures.Add("Ingest:Tokens:Keys is empty: configure at least one signing key (base64, 32 bytes or more).");
        }

        foreach (var (id, value) in tokens.Keys)
        {
            if (!KeyIdPattern().IsMatch(id))
            {
                failures.Add($"Ingest:Tokens:Keys:{id}: a key id is 1 to 16 characters of [A-Za-z0-9_-].");
            }

            var bytes = new byte[value.Length];
            if (!Convert.TryFromBase64String(value, bytes, out var length) || length < 32)
            {
                failures.Add($"Ingest:Tokens:Keys:{id}: not base64 of at least 32 bytes.");
            }
        }

        if (!tokens.Keys.ContainsKey(tokens.ActiveKeyId))
        {
            failures.Add($"Ingest:Tokens:ActiveKeyId '{tokens.ActiveKeyId}' is not one of Ingest:Tokens:Keys.");
        }

        if (options.PublicBaseUrl is { Length: > 0 } url)
        {
            if (!Uri.TryCreate(url, UriKind.Absolute, out var parsed) || parsed.Scheme is not ("http" or "https"))
            {
                failures.Add($"Ingest:PublicBaseUrl '{url}' is not an absolute http or https URL.");
            }
        }
        else if (requirePublicBaseUrl)
        {
            failures.Add("Ingest:PublicBaseUrl is not set: the base URL of click links (such as https://click.example.com), " +
                "required outside the Development environment so that links are never built from a caller's Host header.");
        }

        if (!options.RateLimits.IsUsable)
        {
            failures.Add(RateLimitOptions.Requirement("Ingest:RateLimits"));
        }

        if (options.HotAds.Salts is < 1 or > 255)
        {
            failures.Add("Ingest:HotAds:Salts must be between 1 and 255.");
        }

        if (options.HotAds.ThresholdPerSecond <= 0)
        {
            failures.Add("Ingest:HotAds:ThresholdPerSecond must be positive.");
        }

        if (options.Spool.HedgeAfter <= TimeSpan.Zero)
        {
            failures.Add("Ingest:Spool:HedgeAfter must be positive (at or above Ingest:ProduceTimeout, every click waits for the broker).");
        }

        return failures.Count == 0 ? ValidateOptionsResult.Success : ValidateOptionsResult.Fail(failures);
    }

    [GeneratedRegex("^[A-Za-z0-9_-]{1,16}$")]
    private static partial Regex KeyIdPattern();
}
