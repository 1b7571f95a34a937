using System.CommandLine;
using System.CommandLine.Parsing;
using System.Globalization;
using System.Numerics;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.Cli.Commands;

/// <summary>
/// Parsers of option values. Each reads the option's token, checks its range too and reports a value it cannot take
/// as a parse error (exit 2, one line naming the option); a validator would instead throw reading a value that did
/// not convert.
/// </summary>
public static class CliValues
{
    /// <summary>An option with a default, whose value <paramref name="parser"/> reads and checks.</summary>
    public static Option<T> Option<T>(string name, string description, T defaultValue, Func<ArgumentResult, T> parser) =>
        new(name) { Description = description, DefaultValueFactory = _ => defaultValue, CustomParser = parser };

    /// <summary>An instant: ISO-8601, UTC when no offset is given.</summary>
    public static DateTime? Instant(ArgumentResult result)
    {
        var text = Token(result);
        if (Instants.TryParse(text, out var value))
        {
            return value.UtcDateTime;
        }

        result.AddError($"{OptionName(result)}: '{text}' is not {Instants.Expected}");
        return null;
    }

    /// <summary>A duration in <see cref="Durations"/>' forms from <paramref name="min"/> to <paramref name="max"/>; <paramref name="range"/> says so.</summary>
    public static Func<ArgumentResult, TimeSpan> Duration(TimeSpan min, TimeSpan max, string range) => result =>
    {
        var text = Token(result);
        if (!Durations.TryParse(text, out var value))
        {
            result.AddError($"{OptionName(result)}: '{text}' is not {Durations.Expected}");
        }
        else if (value < min || value > max)
        {
            result.AddError($"{OptionName(result)} must be {range}, not '{text}'");
        }

        return value;
    };

    /// <summary>A number from <paramref name="min"/> to <paramref name="max"/> (invariant culture); <paramref name="range"/> says so.</summary>
    public static Func<ArgumentResult, T> Number<T>(T min, T max, string range)
        where T : INumber<T> => result =>
    {
        var text = Token(result);
        if (T.TryParse(text, NumberStyles.Float, CultureInfo.InvariantCulture, out var value) && value >= min && value <= max)
        {
            return value;
        }

        result.AddError($"{OptionName(result)} must be {range}, not '{text}'");
        return min;
    };

    /// <summary>
    /// <c>--urls</c>: the addresses the web host listens on, as ASP.NET Core takes them (one or more absolute http or https
    /// URLs separated by ';', the host <c>*</c> or <c>+</c> meaning every interface).
    /// </summary>
    public static Option<string?> ListenUrls() => new("--urls")
    {
        Description = "Addresses to listen on, ';'-separated (default http://127.0.0.1:8080).",
        CustomParser = result =>
        {
            var text = Token(result);
            var urls = text.Split(';', StringSplitOptions.TrimEntries);
            if (urls.All(IsListenUrl))
            {
                return text;
            }

            result.AddError($"{OptionName(result)}: '{text}' is not a list of http:// or https:// addresses with a host, separated by ';'");
            return null;
        },
    };

    private static bool IsListenUrl(string url)
    {
        var schemeEnd = url.IndexOf("://", StringComparison.Ordinal);
        var hostStart = schemeEnd + 3;
        // ASP.NET Core's wildcard hosts are not URI hosts: read them as any host name.
        var parsable = schemeEnd > 0 && hostStart < url.Length && url[hostStart] is '*' or '+'
            ? string.Concat(url.AsSpan(0, hostStart), "any", url.AsSpan(hostStart + 1))
            : url;
        return Uri.TryCreate(parsable, UriKind.Absolute, out var uri)
            && (uri.Scheme == Uri.UriSchemeHttp || uri.Scheme == Uri.UriSchemeHttps)
            && uri.Host.Length > 0
            && uri.AbsolutePath == "/" && uri.Query.Length == 0 && uri.Fragment.Length == 0;
    }

    private static string Token(ArgumentResult result) => result.Tokens.Count > 0 ? result.Tokens[0].Value : "";

    private static string OptionName(ArgumentResult result) =>
        result.Parent is OptionResult option ? option.Option.Name : result.Argument.Name;
}
