using System.Security.Cryptography;
using System.Text;
using Microsoft.AspNetCore.Http;

namespace KafkaClicks.ServiceDefaults;

/// <summary>
/// API keys presented as <c>Authorization: Bearer &lt;key&gt;</c>: kept and compared only as SHA-256 hashes, and compared in
/// constant time against every known key, so the answer's timing says nothing about which bytes matched.
/// </summary>
public static class BearerKeys
{
    private const int MaxHeaderLength = 256;

    /// <summary>SHA-256 of an API key (as advertisers.api_key_hash stores it).</summary>
    public static byte[] Hash(string apiKey) => SHA256.HashData(Encoding.UTF8.GetBytes(apiKey));

    /// <summary>The hash of the request's bearer key; null when there is none or the header is not one (or too long).</summary>
    public static byte[]? Presented(HttpRequest request)
    {
        var header = request.Headers.Authorization.ToString();
        return header.StartsWith("Bearer ", StringComparison.Ordinal) && header.Length <= MaxHeaderLength ? Hash(header[7..].Trim()) : null;
    }

    /// <summary>The index of <paramref name="hash"/> among <paramref name="known"/>, or -1; every entry is compared.</summary>
    public static int IndexOf(byte[] hash, byte[][] known)
    {
        var index = -1;
        for (var i = 0; i < known.Length; i++)
        {
            if (CryptographicOperations.FixedTimeEquals(hash, known[i]))
            {
                index = i;
            }
        }

        return index;
    }
}
