using KafkaClicks.ServiceDefaults;
using Microsoft.AspNetCore.OpenApi;
using Microsoft.AspNetCore.Routing;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;

namespace KafkaClicks.Query;

public static class QueryServiceCollectionExtensions
{
    /// <summary>
    /// Registers the query role: API-key authentication and authorization, the click series store, the Redis response cache (when
    /// ConnectionStrings:Redis is set) and the OpenAPI document. Map it with <see cref="QueryEndpoints.MapQuery"/>, after
    /// UseAuthentication and UseAuthorization.
    /// </summary>
    public static IHostApplicationBuilder AddQuery(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<QueryOptions>().BindConfiguration(QueryOptions.Section)
            .Configure<IConfiguration>((options, configuration) =>
            {
                // Set by the sink's settings, which decide what the database keeps.
                options.MinuteRetention = configuration.GetValue("Sink:MinuteRetention", options.MinuteRetention);
                options.RollupRetention = configuration.GetValue("Sink:RollupRetention", options.RollupRetention);
            })
            .ValidateDataAnnotations()
            .Validate(options => options.RateLimits.IsUsable, RateLimitOptions.Requirement("Query:RateLimits"))
            .ValidateOnStart();
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddPostgres(builder.Configuration);
        if (!string.IsNullOrWhiteSpace(builder.Configuration.GetConnectionString("Redis")))
        {
            builder.Services.AddRedis(builder.Configuration);
        }

        builder.Services.AddApiKeyAuthentication();
        builder.Services.Configure<RouteOptions>(options => options.SetParameterPolicy<IdRouteConstraint>(IdRouteConstraint.Name));
        builder.Services.AddSingleton<ClickSeriesStore>();
        builder.Services.AddSingleton<ResponseCache>();
        builder.Services.AddSingleton<ClickQueries>();
        builder.Services.Configure<OpenApiOptions>("v1", options =>
        {
            options.AddDocumentTransformer<QueryOpenApi>();
            options.AddOperationTransformer<QueryOpenApi>();
        });
        return builder;
    }
}
