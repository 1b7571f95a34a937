using System.Text;
using KafkaClicks.Contracts;

namespace KafkaClicks.UnitTests.Partitioning;

public class ClickPartitioningTests
{
    // Expected values from Apache Kafka's UtilsTest.testMurmur2, so our partitions match the Java client's.
    [Theory]
    [InlineData("21", -973932308)]
    [InlineData("foobar", -790332482)]
    [InlineData("a-little-bit-long-string", -985981536)]
    [InlineData("a-little-bit-longer-string", -1486304829)]
    [InlineData("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", -58897971)]
    [InlineData("abc", 479470107)]
    public void Murmur2_matches_kafka(string input, int expected) =>
        Assert.Equal(expected, ClickPartitioning.Murmur2(Encoding.ASCII.GetBytes(input)));

    [Fact]
    public void Unsalted_and_salted_keys_differ_and_are_stable()
    {
        Assert.Equal("42", ClickPartitioning.PartitionKey(42, 0));
        Assert.Equal("42#3", ClickPartitioning.PartitionKey(42, 3));
        var partition = ClickPartitioning.PartitionFor(42, 0, 32);
        Assert.Equal(partition, ClickPartitioning.PartitionFor(42, 0, 32));
        Assert.Equal((ClickPartitioning.Murmur2("42"u8) & 0x7fffffff) % 32, partition);
    }

    [Fact]
    public void Salts_spread_a_hot_ad_over_partitions_and_repeat_per_impression()
    {
        var ids = Enumerable.Range(0, 4000).Select(i => Guid.CreateVersion7().ToString("N")).ToList();
        var salts = ids.Select(id => ClickPartitioning.SaltFor(id, 8)).ToList();
        Assert.All(salts, s => Assert.InRange(s, 0, 7));
        Assert.Equal(8, salts.Distinct().Count());
        Assert.All(salts.GroupBy(s => s), g => Assert.InRange(g.Count(), 300, 700));
        Assert.Equal(salts, ids.Select(id => ClickPartitioning.SaltFor(id, 8)));
        Assert.Equal(0, ClickPartitioning.SaltFor(ids[0], 1));
        var partitions = Enumerable.Range(0, 8).Select(s => ClickPartitioning.PartitionFor(7, s, 32)).Distinct().Count();
        Assert.True(partitions >= 5, $"8 salts of one ad landed on only {partitions} of 32 partitions");
    }
}
