using Confluent.Kafka;
using KafkaClicks.Contracts;
using Microsoft.Extensions.DependencyInjection;
using Microsoft.Extensions.DependencyInjection.Extensions;

namespace KafkaClicks.ServiceDefaults;

public static class ContractSerializerExtensions
{
    /// <summary>Kafka serializers and deserializers of the Avro contracts, one shared instance each.</summary>
    public static IServiceCollection AddContractSerializers(this IServiceCollection services)
    {
        services.TryAddSingleton<ISerializer<ClickEvent>>(new AvroKafkaSerializer<ClickEvent>(ContractCodecs.ClickEvent));
        services.TryAddSingleton<IDeserializer<ClickEvent>>(new AvroKafkaDeserializer<ClickEvent>(ContractCodecs.ClickEvent));
        services.TryAddSingleton<ISerializer<MinuteCount>>(new AvroKafkaSerializer<MinuteCount>(ContractCodecs.MinuteCount));
        services.TryAddSingleton<IDeserializer<MinuteCount>>(new AvroKafkaDeserializer<MinuteCount>(ContractCodecs.MinuteCount));
        return services;
    }
}
