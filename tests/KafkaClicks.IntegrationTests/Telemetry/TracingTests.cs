using System.Diagnostics;
using System.Net;
using KafkaClicks.Cli.Hosting;
using KafkaClicks.IntegrationTests.Infrastructure;
using OpenTelemetry.Trace;

namespace KafkaClicks.IntegrationTests.Telemetry;

public class TracingTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Fact]
    public async Task A_sampled_clicks_trace_spans_the_ingest_request_and_the_aggregators_processing()
    {
        var spans = new List<Activity>();
        await using var host = await ProductHost.StartAsync(postgres, Role.Ingest | Role.Aggregator, configure: builder =>
            builder.Services.ConfigureOpenTelemetryTracerProvider(tracing => tracing.AddInMemoryExporter(spans)));
        await host.AddAdvertiserAsync(1, 90);
        var token = await host.MintAsync(90);
        var traceId = ActivityTraceId.CreateRandom();
        using var request = new HttpRequestMessage(HttpMethod.Get, $"/c/{token}");
        request.Headers.Add("traceparent", $"00-{traceId}-{ActivitySpanId.CreateRandom()}-01");
        using var click = await host.Http.SendAsync(request);
        Assert.Equal(HttpStatusCode.Redirect, click.StatusCode);

        List<Activity> trace;
        var deadline = DateTime.UtcNow.AddSeconds(30);
        do
        {
            await Task.Delay(250);
            lock (spans)
            {
                trace = spans.Where(s => s.TraceId == traceId).ToList();
            }
        }
        while (!trace.Any(s => s.Source.Name == "KafkaClicks.Aggregator") && DateTime.UtcNow < deadline);

        var server = Assert.Single(trace, s => s.Kind == ActivityKind.Server);
        var ingest = Assert.Single(trace, s => s.Source.Name == "KafkaClicks.Ingest");
        var aggregate = Assert.Single(trace, s => s.Source.Name == "KafkaClicks.Aggregator");
        Assert.Equal(server.SpanId, ingest.ParentSpanId);
        Assert.Equal(ActivityKind.Consumer, aggregate.Kind);
        Assert.Contains(aggregate.ParentSpanId, new[] { server.SpanId, ingest.SpanId });
    }
}
