using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.Hosting;

namespace KafkaClicks.Sink;

public static class SinkServiceCollectionExtensions
{
    /// <summary>Registers the sink role: clicks.minute to ad_clicks_minute.</summary>
    public static IHostApplicationBuilder AddSink(this IHostApplicationBuilder builder)
    {
        builder.Services.AddOptions<SinkOptions>().BindConfiguration(SinkOptions.Section).ValidateDataAnnotations().ValidateOnStart();
        builder.Services.AddPostgres(builder.Configuration);
        builder.Services.AddContractSerializers();
        builder.Services.AddSingleton<MinuteCountWriter>();
        builder.Services.AddSingleton<MinuteCountSink>();
        builder.Services.AddHostedService(sp => sp.GetRequiredService<MinuteCountSink>());
        return builder;
    }
}
