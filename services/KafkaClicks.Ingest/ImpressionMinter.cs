namespace KafkaClicks.Ingest;

/// <summary>
/// Mints impression tokens, deciding once per impression how far its clicks are spread: a hot ad's new impressions
/// get one of <see cref="HotAdOptions.Salts"/> salts, signed into the token. Every path that mints goes through here
/// (POST /v1/impressions, the load generator, the demo traffic).
/// </summary>
public sealed class ImpressionMinter(ImpressionTokens tokens, HotAdDetector hotAds)
{
    /// <summary>Mints a token for a new impression of <paramref name="adId"/>.</summary>
    public MintedToken Mint(long adId) => tokens.Mint(adId, hotAds.RecordImpression(adId));
}
