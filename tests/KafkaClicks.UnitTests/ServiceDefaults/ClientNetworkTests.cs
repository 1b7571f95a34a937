using System.Net;
using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.UnitTests.ServiceDefaults;

public class ClientNetworkTests
{
    [Theory]
    [InlineData("203.0.113.77", "203.0.113.0/24")]
    [InlineData("::ffff:198.51.100.9", "198.51.100.0/24")]
    [InlineData("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd::/48")]
    [InlineData("::1", "::/48")]
    public void A_dispute_keeps_the_clients_network_not_its_address(string address, string prefix) =>
        Assert.Equal(prefix, ClientNetwork.DisputePrefix(IPAddress.Parse(address)));

    [Theory]
    [InlineData("203.0.113.77", "203.0.113.77")]
    [InlineData("::ffff:203.0.113.77", "203.0.113.77")]
    [InlineData("2001:db8:abcd:12:1:2:3:4", "2001:db8:abcd:12::/64")]
    public void Anonymous_rate_limits_count_an_ipv4_address_or_an_ipv6_64(string address, string partition) =>
        Assert.Equal(partition, ClientNetwork.Of(IPAddress.Parse(address)));

    [Fact]
    public void An_unknown_address_is_named_as_such() =>
        Assert.Equal(("unknown", string.Empty), (ClientNetwork.Of(null), ClientNetwork.DisputePrefix(null)));
}
