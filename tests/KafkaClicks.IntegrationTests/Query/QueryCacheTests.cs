using System.Diagnostics.Metrics;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using Microsoft.Extensions.DependencyInjection;
using ConnectionMultiplexer = StackExchange.Redis.ConnectionMultiplexer;
using static KafkaClicks.IntegrationTests.Infrastructure.ClickRows;

namespace KafkaClicks.IntegrationTests.Query;

public class QueryCacheTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static readonly DateTimeOffset Base = Day(DateTimeOffset.UtcNow).AddDays(-2);

    /// <summary>How many cache lookups of each result <paramref name="action"/> made, seen in-process by a MeterListener.</summary>
    private static async Task<Dictionary<string, long>> DeltaAsync(Func<Task> action)
    {
        var counts = new Dictionary<string, long> { ["hit"] = 0, ["miss"] = 0, ["bypass"] = 0, ["error"] = 0 };
        using var listener = new MeterListener
        {
            InstrumentPublished = (instrument, l) =>
            {
                if (instrument.Meter.Name == "KafkaClicks.Query" && instrument.Name == "kafkaclicks.query.cache")
                {
                    l.EnableMeasurementEvents(instrument);
                }
            },
        };
        listener.SetMeasurementEventCallback<long>((_, value, tags, _) =>
        {
            foreach (var tag in tags)
            {
                if (tag.Key == "result")
                {
                    lock (counts)
                    {
                        counts[(string)tag.Value!] += value;
                    }
                }
            }
        });
        listener.Start();
        await action();
        return counts;
    }

    [Fact]
    public async Task A_final_range_is_cached_and_a_partial_range_is_not()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var key = await host.AddAdvertiserAsync(1, 11);
        await InsertAsync(host.Database, 11, Base.AddMinutes(3), 4);
        var recent = Minute(DateTimeOffset.UtcNow).AddMinutes(-1);
        await InsertAsync(host.Database, 11, recent, 2);
        await RefreshRollupsAsync(host.Database);
        await CompleteThroughAsync(host.Database, recent.AddMinutes(-5));

        var final = $"/v1/ads/11/clicks?from={Iso(Base)}&to={Iso(Base.AddHours(1))}";
        string first = "", second = "";
        var delta = await DeltaAsync(async () =>
        {
            first = (await GetJsonAsync(host, final, key)).GetRawText();
            second = (await GetJsonAsync(host, final, key)).GetRawText();
        });
        Assert.Equal(1, delta["miss"]);
        Assert.Equal(1, delta["hit"]);
        Assert.Equal(0, delta["bypass"]);
        Assert.Equal(first, second);
        Assert.Contains("\"final\":true", first, StringComparison.Ordinal);

        // The admin's scope has its own entry.
        delta = await DeltaAsync(() => GetJsonAsync(host, final, ProductHost.AdminKey));
        Assert.Equal(1, delta["miss"]);

        // A range that ends after completeThrough is never cached: each request reads the database, so a new count shows at once.
        var partial = $"/v1/ads/11/clicks?from={Iso(recent.AddMinutes(-30))}&to={Iso(recent.AddMinutes(2))}";
        long total = 0;
        delta = await DeltaAsync(async () =>
        {
            Assert.Equal(2, (await GetJsonAsync(host, partial, key)).GetProperty("total").GetInt64());
            await host.Database.ExecuteAsync("UPDATE ad_clicks_minute SET clicks = 9 WHERE ad_id = 11 AND minute = $1", recent);
            total = (await GetJsonAsync(host, partial, key)).GetProperty("total").GetInt64();
        });
        Assert.Equal(9, total);
        Assert.Equal(2, delta["bypass"]);
        Assert.Equal(0, delta["hit"] + delta["miss"]);

        // Top ads always include the current minute: never cached.
        delta = await DeltaAsync(() => GetJsonAsync(host, "/v1/top", key));
        Assert.Equal(1, delta["bypass"]);
    }

    [Fact]
    public async Task Without_redis_final_ranges_are_answered_from_the_database()
    {
        await using var redis = await PrivateRedis.StartAsync();
        await using var host = await ProductHost.StartAsync(postgres, Role.Query, new Dictionary<string, string?> { ["ConnectionStrings:Redis"] = redis.ConnectionString });
        var key = await host.AddAdvertiserAsync(1, 11);
        await InsertAsync(host.Database, 11, Base.AddMinutes(3), 4);
        await RefreshRollupsAsync(host.Database);
        await CompleteThroughAsync(host.Database, Minute(DateTimeOffset.UtcNow));
        var final = $"/v1/ads/11/clicks?from={Iso(Base)}&to={Iso(Base.AddHours(1))}";

        // Start from a connected client, so the first lookup is a real miss and not a connection error.
        var multiplexer = host.App.Services.GetRequiredService<StackExchange.Redis.IConnectionMultiplexer>();
        for (var wait = 0; wait < 100 && !multiplexer.IsConnected; wait++)
        {
            await Task.Delay(100);
        }

        Assert.True(multiplexer.IsConnected);
        var delta = await DeltaAsync(() => GetJsonAsync(host, final, key));
        Assert.Equal(1, delta["miss"]);

        await redis.StopAsync();
        delta = await DeltaAsync(async () =>
        {
            for (var i = 0; i < 3; i++)
            {
                Assert.Equal(4, (await GetJsonAsync(host, final, key)).GetProperty("total").GetInt64());
            }
        });
        Assert.Equal(3, delta["error"]);
        Assert.Equal(0, delta["hit"]);
    }

    [Fact]
    public async Task Cached_answers_are_kept_apart_per_database()
    {
        await using var multiplexer = await ConnectionMultiplexer.ConnectAsync(RedisServer.ConnectionString);
        await using var host = await ProductHost.StartAsync(postgres, Role.Query);
        var key = await host.AddAdvertiserAsync(1, 11);
        await CompleteThroughAsync(host.Database, Minute(DateTimeOffset.UtcNow));
        await GetJsonAsync(host, $"/v1/ads/11/clicks?from={Iso(Base)}&to={Iso(Base.AddHours(1))}", key);

        // The answer is stored without waiting for Redis: wait for the write to land.
        var server = multiplexer.GetServers()[0];
        var pattern = $"kafkaclicks:query:v1:*/{host.Database.Name}:advertiser-1:ad/11?*";
        // Large pages: a development Redis may hold millions of other keys (the benchmarks' impression claims).
        async Task<List<StackExchange.Redis.RedisKey>> KeysAsync() => await server.KeysAsync(pattern: pattern, pageSize: 10_000).ToListAsync();
        var keys = await KeysAsync();
        for (var attempt = 0; keys.Count == 0 && attempt < 50; attempt++)
        {
            await Task.Delay(100);
            keys = await KeysAsync();
        }

        Assert.Single(keys);
        Assert.True(await multiplexer.GetDatabase().KeyTimeToLiveAsync(keys[0]) > TimeSpan.Zero);
    }
}
