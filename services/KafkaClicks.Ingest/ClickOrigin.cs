using System.Security.Cryptography;
using System.Text;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Http;

namespace KafkaClicks.Ingest;

/// <summary>
/// What a billing dispute desk asks about a click, kept without keeping the person: the client's network (IPv4 /24,
/// IPv6 /48, after trusted proxies), a short hash of its User-Agent and the host of the page it came from.
/// </summary>
public static class ClickOrigin
{
    private const int MaxUserAgentChars = 1024;

    /// <summary>Fills <see cref="ClickEvent.ClientNetwork"/>, <see cref="ClickEvent.UserAgentHash"/> and <see cref="ClickEvent.ReferrerHost"/> from the request.</summary>
    public static void Describe(ClickEvent click, HttpContext context)
    {
        click.ClientNetwork = ClientNetwork.DisputePrefix(context.Connection.RemoteIpAddress);
        click.UserAgentHash = UserAgentHash(context.Request.Headers.UserAgent.ToString());
        click.ReferrerHost = ReferrerHost(context.Request.Headers.Referer.ToString());
    }

    /// <summary>The first 16 hex digits (64 bits) of SHA-256 of the User-Agent (its first 1,024 characters); empty when absent.</summary>
    public static string UserAgentHash(string userAgent)
    {
        if (userAgent.Length == 0)
        {
            return string.Empty;
        }

        var text = userAgent.AsSpan(0, Math.Min(userAgent.Length, MaxUserAgentChars));
        Span<byte> utf8 = stackalloc byte[Encoding.UTF8.GetMaxByteCount(MaxUserAgentChars)];
        var length = Encoding.UTF8.GetBytes(text, utf8);
        Span<byte> hash = stackalloc byte[SHA256.HashSizeInBytes];
        SHA256.HashData(utf8[..length], hash);
        return Convert.ToHexStringLower(hash[..8]);
    }

    /// <summary>The lower-case host of an absolute http(s) Referer; empty when absent or anything else.</summary>
    public static string ReferrerHost(string referer) =>
        referer.Length is > 0 and <= 2048 && Uri.TryCreate(referer, UriKind.Absolute, out var uri) && uri.Scheme is "http" or "https"
            ? uri.IdnHost.ToLowerInvariant()
            : string.Empty;
}
