using System.Globalization;
using Confluent.Kafka;
using KafkaClicks.IntegrationTests.Infrastructure;

namespace KafkaClicks.IntegrationTests.Broker;

/// <summary>`kafkaclicks broker`, the embedded broker in a process of its own, as developers and the tests' child processes use it.</summary>
[Trait("Storage", "none")]
public sealed class EmbeddedBrokerProcessTests
{
    /// <summary>
    /// Suspended and resumed (Ctrl-Z and fg, or a test pausing it as a broker outage), the process takes SIGCONT, whose
    /// handler the .NET runtime installs. Run on librdkafka's mock cluster thread, it used to interrupt that thread's
    /// poll, which ended its loop for good: the broker then closed every connection at once (seen once in a few resumes).
    /// </summary>
    [Fact]
    public async Task The_broker_keeps_serving_after_being_suspended_and_resumed_again_and_again()
    {
        await using var process = KafkaClicksProcess.Start("broker", new Dictionary<string, string>(), "broker", "--port",
            FreePorts.Next().ToString(CultureInfo.InvariantCulture));
        var line = await process.WaitForLineAsync("bootstrap servers:", TimeSpan.FromSeconds(30));
        var bootstrap = line[(line.IndexOf(':', StringComparison.Ordinal) + 1)..].Trim();

        for (var i = 0; i < 50; i++)
        {
            TestKafka.Signal(process.Id, reachable: false);
            await Task.Delay(20);
            TestKafka.Signal(process.Id, reachable: true);
            await Task.Delay(20);
        }

        const string topic = "after-resumes";
        using var producer = new ProducerBuilder<Null, string>(new ProducerConfig
        {
            BootstrapServers = bootstrap,
            Acks = Acks.All,
            MessageTimeoutMs = 10_000,
        }).Build();
        var delivered = await producer.ProduceAsync(topic, new Message<Null, string> { Value = "still here" });
        Assert.Equal(PersistenceStatus.Persisted, delivered.Status);
        Assert.False(process.HasExited);
        Assert.DoesNotContain("Mock cluster failed to poll", process.Output(), StringComparison.Ordinal);
    }
}
