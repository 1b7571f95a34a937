using System.Diagnostics;
using Confluent.Kafka;
using KafkaClicks.Contracts;
using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.Http;
using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Ingest;

/// <summary>
/// One click: verify the token, find the ad, claim the impression, make the event durable, redirect.
/// The redirect always goes to the ad's registered URL, never to anything taken from the request.
/// </summary>
public sealed partial class ClickHandler
{
    private readonly ImpressionTokens _tokens;
    private readonly AdDirectory _ads;
    private readonly ImpressionDeduplicator _dedupe;
    private readonly ClickEventProducer _producer;
    private readonly ClickSpool _spool;
    private readonly TimeProvider _time;
    private readonly TimeSpan _hedgeAfter;
    private readonly TimeSpan _produceTimeout;
    private readonly ILogger<ClickHandler> _logger;
    private readonly string _instance = Environment.MachineName;

    public ClickHandler(ImpressionTokens tokens, AdDirectory ads, ImpressionDeduplicator dedupe, ClickEventProducer producer,
        ClickSpool spool, IOptions<IngestOptions> options, TimeProvider time, ILogger<ClickHandler> logger)
    {
        _hedgeAfter = options.Value.Spool.HedgeAfter;
        _produceTimeout = options.Value.ProduceTimeout;
        _spool = spool;
        _tokens = tokens;
        _ads = ads;
        _dedupe = dedupe;
        _producer = producer;
        _time = time;
        _logger = logger;
    }

    /// <summary>Handles one click of <paramref name="token"/>, made by the client of <paramref name="context"/>.</summary>
    public async Task<IResult> HandleAsync(string? token, HttpContext context, CancellationToken cancellationToken)
    {
        using var activity = IngestTelemetry.Source.StartActivity("click", ActivityKind.Internal);
        var status = _tokens.Verify(token, out var claims);
        if (status != TokenStatus.Authentic)
        {
            var outcome = status == TokenStatus.Forged ? ClickOutcome.Forged : ClickOutcome.Malformed;
            IngestTelemetry.Click(outcome);
            return status == TokenStatus.Forged
                ? Problems.Problem(400, "forged-token", "The click token's signature is not valid.")
                : Problems.Problem(400, "malformed-token", "The click token is not a KafkaClicks impression token.");
        }

        AdRoute? ad;
        try
        {
            ad = await _ads.FindAsync(claims.AdId, cancellationToken);
        }
        catch (Exception e) when (e is NpgsqlException or TimeoutException)
        {
            LogAdLookupFailed(claims.AdId, e.Message);
            IngestTelemetry.Click(ClickOutcome.Unavailable);
            return Problems.Problem(503, "ad-lookup-unavailable", "The ad cannot be looked up right now; retry shortly.");
        }

        if (ad is null)
        {
            IngestTelemetry.Click(ClickOutcome.UnknownAd);
            return Problems.Problem(404, "unknown-ad", "The ad of this click does not exist or was removed.");
        }

        if (ad.Location is not { } location)
        {
            IngestTelemetry.Click(ClickOutcome.UnroutableAd);
            return UnroutableAd();
        }

        var now = _time.GetUtcNow();
        if (now >= claims.ExpiresAt)
        {
            IngestTelemetry.Click(ClickOutcome.Expired);
            return Results.Redirect(location);
        }

        var impressionId = claims.ImpressionKey;
        var claim = await _dedupe.ClaimAsync(impressionId, claims.ExpiresAt, _time);
        var dedupe = claim.Result;
        if (dedupe == DedupeResult.Duplicate)
        {
            IngestTelemetry.Click(ClickOutcome.Duplicate);
            return Results.Redirect(location);
        }

        var click = new ClickEvent
        {
            ImpressionId = impressionId,
            AdId = ad.AdId,
            AdvertiserId = ad.AdvertiserId,
            // The salt was fixed when the impression was minted: every repeat, on any instance, lands on the same
            // partition, where the aggregator's dedupe sees it.
            Salt = claims.Salt,
            ClickedAt = now.UtcDateTime,
            ImpressionAt = claims.IssuedAt.UtcDateTime,
            DedupeChecked = dedupe == DedupeResult.New,
            IngestInstance = _instance,
        };
        ClickOrigin.Describe(click, context);
        if (!await MakeDurableAsync(click))
        {
            // An unchecked claim may still have reached Redis after its timeout; it is given back too, or the user's
            // retry would be taken for a repeat and this click lost (the release follows the claim on the same
            // connection, and deletes only this click's own claim).
            await _dedupe.ReleaseAsync(impressionId, claim);

            IngestTelemetry.Click(ClickOutcome.Unavailable);
            return Problems.Problem(503, "broker-unavailable", "The click could not be recorded durably; retry shortly.");
        }

        _dedupe.Settle(claim);

        IngestTelemetry.Click(dedupe == DedupeResult.New ? ClickOutcome.Counted : ClickOutcome.CountedUnchecked);
        return Results.Redirect(location);
    }

    /// <summary>The answer for an ad whose registered URL cannot be redirected to (<see cref="RedirectTarget"/>).</summary>
    internal static IResult UnroutableAd() =>
        Problems.Problem(404, "unroutable-ad", "The ad's registered URL is not a valid redirect target; its clicks are refused until it is fixed.");

    /// <summary>
    /// The broker's acknowledgement, or else an fsynced record in the local spool: when the broker failed, and as soon
    /// as the acknowledgement takes longer than <c>Ingest:Spool:HedgeAfter</c>, while the produce goes on (the spool
    /// forwards the click only if that produce fails). While recent failures say the broker is down, clicks go to the
    /// spool at once instead of each waiting out the produce deadline. The request's own cancellation is not passed on:
    /// a click being made durable finishes even if the browser went away.
    /// </summary>
    private async Task<bool> MakeDurableAsync(ClickEvent click)
    {
        if (!_spool.BrokerLikelyDown)
        {
            var acknowledged = ProduceAsync(click);
            if (!acknowledged.IsCompleted && _hedgeAfter < _produceTimeout)
            {
                using var hedge = new CancellationTokenSource();
                var first = await Task.WhenAny(acknowledged, Task.Delay(_hedgeAfter, _time, hedge.Token));
                await hedge.CancelAsync();
                if (first != acknowledged)
                {
                    try
                    {
                        await _spool.AppendHedgedAsync(click, acknowledged);
                        return true;
                    }
                    catch (SpoolUnavailableException e)
                    {
                        // The broker may still take it.
                        LogSpoolFailed(click.ImpressionId, e.Message);
                        return await acknowledged;
                    }
                }
            }

            if (await acknowledged)
            {
                return true;
            }
        }

        try
        {
            await _spool.AppendAsync(click);
            return true;
        }
        catch (SpoolUnavailableException e)
        {
            LogSpoolFailed(click.ImpressionId, e.Message);
            return false;
        }
    }

    /// <summary>Produces the click: true once the broker acknowledged it, false when it failed (the broker is then taken for down).</summary>
    private async Task<bool> ProduceAsync(ClickEvent click)
    {
        var started = Stopwatch.GetTimestamp();
        try
        {
            await _producer.ProduceAsync(click, CancellationToken.None);
            IngestTelemetry.Produced(Stopwatch.GetElapsedTime(started), ok: true);
            return true;
        }
        catch (Exception e) when (e is KafkaException or OperationCanceledException)
        {
            IngestTelemetry.Produced(Stopwatch.GetElapsedTime(started), ok: false);
            LogProduceFailed(click.ImpressionId, e.Message);
            _spool.MarkBrokerDown();
            return false;
        }
    }

    [LoggerMessage(EventId = 2003, Level = LogLevel.Error, Message = "Click for impression {ImpressionId} refused: the broker and the spool are both unavailable ({Error})")]
    private partial void LogSpoolFailed(string impressionId, string error);

    [LoggerMessage(EventId = 2001, Level = LogLevel.Warning, Message = "Broker did not acknowledge the click for impression {ImpressionId} ({Error}); the spool takes it and forwards it")]
    private partial void LogProduceFailed(string impressionId, string error);

    [LoggerMessage(EventId = 2002, Level = LogLevel.Warning, Message = "Ad {AdId} lookup failed: {Error}")]
    private partial void LogAdLookupFailed(long adId, string error);
}
