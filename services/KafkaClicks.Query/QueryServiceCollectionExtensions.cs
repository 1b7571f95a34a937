using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace KafkaClicks.Query;

public static class QueryServiceCollectionExtensions
{
    /// <summary>Registers the query role. Map it with <see cref="QueryEndpoints.MapQuery"/>.</summary>
    public static IHostApplicationBuilder AddQuery(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<QueryOptions>().BindConfiguration(QueryOptions.Section).ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddPostgres(builder.Configuration);
        builder.Services.AddSingleton<ApiKeyAuthenticator>();
        builder.Services.AddSingleton<ClickSeriesStore>();
        return builder;
    }
}
