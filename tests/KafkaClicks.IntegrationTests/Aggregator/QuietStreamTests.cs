using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using static KafkaClicks.IntegrationTests.Infrastructure.ClickRows;

namespace KafkaClicks.IntegrationTests.Aggregator;

/// <summary>
/// When clicks stop (a quiet night, the end of a campaign) no click moves stream time, yet the last minute must still
/// turn final and <c>completeThrough</c> pass it: counts marked partial for good are never billed as final.
/// </summary>
[Trait("Category", "Billing")]
public sealed class QuietStreamTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task When_clicks_stop_the_last_minute_turns_final_and_completeThrough_passes_it()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Aggregator | Role.Sink | Role.Query);
        await host.AddAdvertiserAsync(1, 90);

        // The last clicks of the stream, in the last seconds of the previous minute; then nothing more.
        var now = DateTime.UtcNow;
        var minute = new DateTime(now.Ticks - (now.Ticks % TimeSpan.TicksPerMinute), DateTimeKind.Utc).AddMinutes(-1);
        RawClicks.Produce(host.Broker, 8, Enumerable.Range(57, 3).Select(s => RawClicks.Click(90, minute.AddSeconds(s))));

        const string Counts = "SELECT coalesce(sum(clicks) FILTER (WHERE final), 0)::bigint FROM ad_clicks_minute WHERE ad_id = 90 AND minute = $1";
        var deadline = DateTime.UtcNow.AddSeconds(60);
        long final;
        while ((final = await host.Database.ScalarAsync<long>(Counts, minute)) < 3 && DateTime.UtcNow < deadline)
        {
            await Task.Delay(250);
        }

        Assert.Equal(3L, final);
        Assert.Equal(0L, await host.Database.ScalarAsync<long>("SELECT count(*) FROM ad_clicks_minute WHERE ad_id = 90 AND NOT final"));
        var answer = await GetJsonAsync(host, $"/v1/ads/90/clicks?from={Iso(minute)}&to={Iso(minute.AddMinutes(1))}&granularity=1m", ProductHost.AdminKey);
        Assert.True(answer.GetProperty("completeThrough").GetDateTimeOffset() >= minute.AddMinutes(1),
            $"completeThrough {answer.GetProperty("completeThrough")} does not pass the final minute {minute:O}");
        Assert.Equal(3, answer.GetProperty("total").GetInt64());
    }
}
