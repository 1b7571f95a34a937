namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>The real Redis that infra/dev.sh starts (KAFKACLICKS_TEST_REDIS, default the dev.sh port).</summary>
public static class RedisServer
{
    public static string ConnectionString { get; } =
        (Environment.GetEnvironmentVariable("KAFKACLICKS_TEST_REDIS") ?? "127.0.0.1:63799") + ",abortConnect=false";
}
