using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaClicks.Ingest;

/// <summary>
/// Builds the click path's singletons (Redis connection, producer and its partition metadata, ad cache) at start,
/// before the server accepts requests: built lazily under a burst of first requests, their blocking set-up would
/// starve the thread pool.
/// </summary>
internal sealed class IngestWarmup(IServiceProvider services) : IHostedService
{
    public Task StartAsync(CancellationToken cancellationToken)
    {
        services.GetRequiredService<ClickHandler>();
        return Task.CompletedTask;
    }

    public Task StopAsync(CancellationToken cancellationToken) => Task.CompletedTask;
}
