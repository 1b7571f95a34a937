using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;
using Microsoft.Extensions.Hosting;
using Microsoft.Extensions.Options;
using Npgsql;

namespace KafkaClicks.Sink;

public static class SinkServiceCollectionExtensions
{
    /// <summary>Registers the sink role: clicks.minute to ad_clicks_minute, the rollup refresh job and the retention job.</summary>
    public static IHostApplicationBuilder AddSink(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SinkOptions>().BindConfiguration(SinkOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddPostgres(builder.Configuration);
        builder.Services.AddContractSerializers();
        builder.Services.AddKafka();
        builder.Services.AddSingleton(sp => new MinuteCountWriter(
            sp.GetRequiredService<NpgsqlDataSource>(),
            sp.GetRequiredService<IOptions<SinkOptions>>().Value.EffectiveWriterConnections));
        builder.Services.AddSingleton<MinuteCountSink>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<MinuteCountSink>());
        builder.Services.TryAddSingleton(TimeProvider.System);
        builder.Services.AddSingleton<RollupRefreshJob>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RollupRefreshJob>());
        builder.Services.AddSingleton<RetentionJob>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<RetentionJob>());
        return builder;
    }
}
