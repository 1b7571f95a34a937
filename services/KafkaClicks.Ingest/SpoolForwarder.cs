using Confluent.Kafka;
using KafkaClicks.Contracts;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;

namespace KafkaClicks.Ingest;

/// <summary>
/// Drains the click spool to clicks.raw when the broker is reachable: segment by segment, oldest first, each
/// deleted only after all its records were acknowledged. A click spooled while its own produce still waited (a slow
/// acknowledgement, <see cref="SpoolOptions.HedgeAfter"/>) is sent only if that produce failed. A segment whose
/// forwarding fails stays and is retried (records already acknowledged are sent again; the aggregator's and the
/// reconciler's dedupe make that harmless).
/// </summary>
public sealed partial class SpoolForwarder : BackgroundService
{
    private const int InFlight = 1000;
    private readonly ClickSpool _spool;
    private readonly ClickEventProducer _producer;
    private readonly SpoolOptions _options;
    private readonly ILogger<SpoolForwarder> _logger;

    public SpoolForwarder(ClickSpool spool, ClickEventProducer producer, IOptions<IngestOptions> options, ILogger<SpoolForwarder> logger)
    {
        _spool = spool;
        _producer = producer;
        _options = options.Value.Spool;
        _logger = logger;
    }

    /// <summary>Forwards every sealed segment; returns the number of clicks it sent (and the broker acknowledged).</summary>
    public async Task<int> DrainAsync(CancellationToken cancellationToken)
    {
        var forwarded = 0;
        foreach (var segment in _spool.Seal())
        {
            var (clicks, torn) = ClickSpool.Read(segment);
            if (torn)
            {
                LogTornTail(segment, clicks.Count);
            }

            var sent = 0;
            foreach (var chunk in clicks.Chunk(InFlight))
            {
                var results = await Task.WhenAll(chunk.Select(c => ForwardAsync(c, cancellationToken)));
                sent += results.Count(r => r);
            }

            _spool.Forgotten(segment, sent);
            forwarded += sent;
        }

        if (forwarded > 0)
        {
            _spool.MarkBrokerUp();
            LogDrained(forwarded);
        }

        return forwarded;
    }

    /// <summary>Produces one spooled click unless its own produce was acknowledged meanwhile; true when it was sent.</summary>
    private async Task<bool> ForwardAsync(ClickEvent click, CancellationToken cancellationToken)
    {
        if (await _spool.AcknowledgedMeanwhileAsync(click))
        {
            return false;
        }

        await _producer.ProduceAsync(click, cancellationToken);
        return true;
    }

    protected override async Task ExecuteAsync(CancellationToken stoppingToken)
    {
        using var timer = new PeriodicTimer(_options.ForwardInterval);
        while (await timer.WaitForNextTickAsync(stoppingToken))
        {
            if (_spool.PendingBytes == 0)
            {
                continue;
            }

            try
            {
                await DrainAsync(stoppingToken);
            }
            catch (Exception e) when (e is KafkaException or OperationCanceledException && !stoppingToken.IsCancellationRequested)
            {
                LogForwardFailed(e.Message);
            }
        }
    }

    [LoggerMessage(EventId = 2301, Level = LogLevel.Information, Message = "Forwarded {Count} spooled clicks to the broker")]
    private partial void LogDrained(int count);

    [LoggerMessage(EventId = 2302, Level = LogLevel.Warning, Message = "Spool segment {Segment} had a torn tail (a crash mid-write); its {Count} intact records are forwarded")]
    private partial void LogTornTail(string segment, int count);

    [LoggerMessage(EventId = 2303, Level = LogLevel.Debug, Message = "Broker still unreachable for the spool: {Error}")]
    private partial void LogForwardFailed(string error);
}
