namespace KafkaClicks.Ingest;

/// <summary>
/// An ad's registered URL as the value of a 302's Location header. Headers carry ASCII only, so a URL with a
/// non-ASCII host is sent with the host in IDNA form (<c>bücher.example</c> as <c>xn--bcher-kva.example</c>), and
/// non-ASCII or control characters elsewhere percent-encoded; plain ASCII URLs are sent exactly as registered.
/// </summary>
public static class RedirectTarget
{
    /// <summary>
    /// The Location value for <paramref name="registered"/>, or null when it cannot be a safe redirect: not an
    /// absolute http(s) URL, or carrying user info (<c>https://bank.example@evil.example/</c> looks like one site and
    /// opens another).
    /// </summary>
    public static string? ToLocation(string registered)
    {
        if (!Uri.TryCreate(registered, UriKind.Absolute, out var uri)
            || uri.Scheme is not ("http" or "https")
            || uri.UserInfo.Length > 0
            || uri.IdnHost.Length == 0)
        {
            return null;
        }

        if (registered.All(c => c is > ' ' and < '\u007f'))
        {
            return registered;
        }

        var port = uri.IsDefaultPort ? "" : $":{uri.Port}";
        var host = uri.HostNameType == UriHostNameType.IPv6 && !uri.IdnHost.StartsWith('[') ? $"[{uri.IdnHost}]" : uri.IdnHost;
        return $"{uri.Scheme}://{host}{port}{uri.GetComponents(UriComponents.PathAndQuery | UriComponents.Fragment, UriFormat.UriEscaped)}";
    }
}
