using System.Net;
using Confluent.Kafka;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.Contracts;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaClicks.IntegrationTests.Ingest;

/// <summary>A 302 means the click is durable: acknowledged by the broker, or fsynced in the local spool while it is down.</summary>
public class SpoolTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    private static string TempDirectory() => Path.Combine(Path.GetTempPath(), "kafkaclicks-spool-tests", Guid.NewGuid().ToString("N"));

    [Fact]
    public async Task While_the_broker_is_unreachable_clicks_are_spooled_and_forwarded_when_it_is_back()
    {
        var spoolDirectory = TempDirectory();
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest, new Dictionary<string, string?>
        {
            ["Ingest:Spool:Directory"] = spoolDirectory,
            ["Ingest:Spool:ForwardInterval"] = "00:00:00.200",
            ["Ingest:ProduceTimeout"] = "00:00:00.500",
        });
        await host.AddAdvertiserAsync(1, 60);
        var impressions = new List<string>();
        var tokens = host.App.Services.GetRequiredService<ImpressionTokens>();
        async Task ClickAsync()
        {
            var minted = tokens.Mint(60);
            using var click = await host.Http.GetAsync(new Uri($"/c/{minted.Token}", UriKind.Relative));
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
            Assert.Equal(ProductHost.AdUrl(60), click.Headers.Location?.ToString());
            impressions.Add(minted.ImpressionId);
        }

        for (var i = 0; i < 10; i++)
        {
            await ClickAsync();
        }

        var spool = host.App.Services.GetRequiredService<ClickSpool>();
        TestKafka.SetReachable(host.Broker, false);
        for (var i = 0; i < 30; i++)
        {
            await ClickAsync();
        }

        Assert.True(spool.PendingBytes > 0, "clicks accepted while the broker was down must be in the spool");
        Assert.NotEmpty(Directory.EnumerateFiles(spoolDirectory));

        TestKafka.SetReachable(host.Broker, true);
        var events = await host.ReadClicksAsync(TimeSpan.FromSeconds(30));
        Assert.Equal(impressions.Order(), events.Select(e => e.Message.Key).Distinct().Order());
        Assert.All(events, e => Assert.Equal(ClickPartitioning.PartitionFor(60, e.Message.Value.Salt, 8), e.Partition.Value));
        Directory.Delete(spoolDirectory, recursive: true);
    }

    /// <summary>
    /// A broker slow to acknowledge (a stalled fetch, a pause, a leader election) costs a click at most
    /// Ingest:Spool:HedgeAfter: past it the click is fsynced in the spool and answered while its produce goes on. Once the
    /// broker takes that produce, the spooled copy is not sent again: clicks.raw holds every click once.
    /// </summary>
    [Fact]
    [Trait("Category", "Billing")]
    public async Task A_click_the_broker_is_slow_to_acknowledge_is_answered_from_the_spool_and_recorded_once()
    {
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest, new Dictionary<string, string?>
        {
            ["Ingest:Spool:Directory"] = TempDirectory(),
            ["Ingest:Spool:ForwardInterval"] = "00:00:00.200",
            ["Ingest:Spool:HedgeAfter"] = "00:00:00.050",
            ["Ingest:ProduceTimeout"] = "00:00:20",
        });
        await host.AddAdvertiserAsync(1, 61);
        var tokens = host.App.Services.GetRequiredService<ImpressionTokens>();
        var impressions = new List<string>();
        async Task ClickAsync()
        {
            var minted = tokens.Mint(61);

            // Without the hedge the click waits for the broker, which is back only after every click here was answered.
            using var patience = new CancellationTokenSource(TimeSpan.FromSeconds(10));
            using var click = await host.Http.GetAsync(new Uri($"/c/{minted.Token}", UriKind.Relative), patience.Token);
            Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);
            impressions.Add(minted.ImpressionId);
        }

        await ClickAsync();
        var spool = host.App.Services.GetRequiredService<ClickSpool>();
        TestKafka.SetReachable(host.Broker, false);
        try
        {
            for (var i = 0; i < 10; i++)
            {
                await ClickAsync();
            }

            Assert.True(spool.PendingBytes > 0, "clicks answered before the broker acknowledged them must be in the spool");
        }
        finally
        {
            TestKafka.SetReachable(host.Broker, true);
        }

        var events = await host.ReadClicksAsync(TimeSpan.FromSeconds(60));
        Assert.Equal(impressions.Order(), events.Select(e => e.Message.Key).Order());
    }

    [Fact]
    public async Task A_torn_tail_after_a_crash_is_skipped_and_every_record_before_it_survives_a_restart()
    {
        var directory = TempDirectory();
        var options = Options.Create(new IngestOptions { Spool = new SpoolOptions { Directory = directory } });
        var now = DateTime.UnixEpoch.AddMilliseconds(DateTimeOffset.UtcNow.ToUnixTimeMilliseconds());
        var clicks = Enumerable.Range(0, 10).Select(i => new ClickEvent
        {
            ImpressionId = Guid.NewGuid().ToString("N"),
            AdId = 7,
            AdvertiserId = 1,
            ClickedAt = now.AddSeconds(-i),
            ImpressionAt = DateTime.UtcNow.AddMinutes(-1),
        }).ToList();
        string segment;
        await using (var spool = new ClickSpool(options, TimeProvider.System, NullLogger<ClickSpool>.Instance))
        {
            await Task.WhenAll(clicks.Select(spool.AppendAsync));
            segment = Assert.Single(spool.Seal());
        }

        // A crash in the middle of a write: a header that promises more bytes than were written.
        await using (var file = new FileStream(segment, FileMode.Append))
        {
            await file.WriteAsync(new byte[] { 0, 0, 0, 90, 1, 2, 3, 4, 5, 6, 7 });
        }

        await using var restarted = new ClickSpool(options, TimeProvider.System, NullLogger<ClickSpool>.Instance);
        Assert.True(restarted.PendingBytes > 0);
        var (recovered, torn) = ClickSpool.Read(Assert.Single(restarted.Seal()));
        Assert.True(torn);
        Assert.Equal(clicks.Select(c => c.ImpressionId), recovered.Select(c => c.ImpressionId));
        Assert.Equal(clicks.Select(c => c.ClickedAt), recovered.Select(c => c.ClickedAt));
        Directory.Delete(directory, recursive: true);
    }

    /// <summary>
    /// Two ingest processes given one folder (a copied deployment file, two instances on one host): the second's forwarder
    /// would take the first's open segment for sealed, forward what it held and delete it, and every click the first
    /// spooled into it afterwards, each already answered 302, would be lost. The second spool is refused instead.
    /// </summary>
    [Fact]
    [Trait("Category", "Billing")]
    public async Task A_spool_folder_in_use_is_refused_to_a_second_spool_and_the_first_loses_nothing()
    {
        var directory = TempDirectory();
        var options = Options.Create(new IngestOptions { Spool = new SpoolOptions { Directory = directory } });
        ClickEvent Click() => new() { ImpressionId = Guid.NewGuid().ToString("N"), AdId = 1, ClickedAt = DateTime.UtcNow, ImpressionAt = DateTime.UtcNow };
        var clicks = new List<ClickEvent> { Click(), Click() };

        await using (var first = new ClickSpool(options, TimeProvider.System, NullLogger<ClickSpool>.Instance))
        {
            await first.AppendAsync(clicks[0]);
            var refused = Assert.Throws<KafkaClicksConfigurationException>(() => new ClickSpool(options, TimeProvider.System, NullLogger<ClickSpool>.Instance));
            Assert.Contains($"Ingest:Spool:Directory {directory} is in use by another ingest process", refused.Message, StringComparison.Ordinal);
            await first.AppendAsync(clicks[1]);
        }

        // Its process gone, the folder is free again: the next instance forwards everything the first spooled.
        await using var next = new ClickSpool(options, TimeProvider.System, NullLogger<ClickSpool>.Instance);
        var spooled = next.Seal().SelectMany(segment => ClickSpool.Read(segment).Clicks).Select(c => c.ImpressionId);
        Assert.Equal(clicks.Select(c => c.ImpressionId), spooled);
        Directory.Delete(directory, recursive: true);
    }

    [Fact]
    public async Task A_full_spool_refuses_instead_of_filling_the_disk()
    {
        var directory = TempDirectory();
        await using var spool = new ClickSpool(Options.Create(new IngestOptions { Spool = new SpoolOptions { Directory = directory, MaxBytes = 400 } }),
            TimeProvider.System, NullLogger<ClickSpool>.Instance);
        ClickEvent Click() => new() { ImpressionId = Guid.NewGuid().ToString("N"), AdId = 1, ClickedAt = DateTime.UtcNow, ImpressionAt = DateTime.UtcNow };

        await spool.AppendAsync(Click());
        var refused = await Record.ExceptionAsync(async () =>
        {
            for (var i = 0; i < 20; i++)
            {
                await spool.AppendAsync(Click());
            }
        });

        Assert.IsType<SpoolUnavailableException>(refused);
        Assert.True(spool.PendingBytes <= 400);
        Directory.Delete(directory, recursive: true);
    }
}
