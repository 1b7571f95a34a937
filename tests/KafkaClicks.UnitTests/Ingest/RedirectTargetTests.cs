using KafkaClicks.Ingest;

namespace KafkaClicks.UnitTests.Ingest;

public class RedirectTargetTests
{
    [Theory]
    [InlineData("https://advertiser.example/landing/3?utm=kc", "https://advertiser.example/landing/3?utm=kc")]
    [InlineData("http://advertiser.example", "http://advertiser.example")]
    [InlineData("https://bücher.example/sommer", "https://xn--bcher-kva.example/sommer")]
    [InlineData("https://shop.example:8443/été?q=über#top", "https://shop.example:8443/%C3%A9t%C3%A9?q=%C3%BCber#top")]
    [InlineData("https://shop.example/a\u0001b", "https://shop.example/a%01b")]
    [InlineData("https://[2001:db8::1]:8443/été", "https://[2001:db8::1]:8443/%C3%A9t%C3%A9")]
    public void A_registered_url_becomes_an_ascii_location(string registered, string location) =>
        Assert.Equal(location, RedirectTarget.ToLocation(registered));

    [Theory]
    [InlineData("https://bank.example@evil.example/")]
    [InlineData("https://user:secret@advertiser.example/")]
    [InlineData("javascript:alert(1)")]
    [InlineData("ftp://advertiser.example/file")]
    [InlineData("//advertiser.example/landing")]
    [InlineData("/landing")]
    [InlineData("https://a.example\\@evil.example/")]
    public void A_url_that_is_not_a_safe_redirect_has_no_location(string registered) =>
        Assert.Null(RedirectTarget.ToLocation(registered));
}
