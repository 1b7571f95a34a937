using KafkaClicks.Contracts;
using KafkaClicks.Query;
using Microsoft.Extensions.Configuration;
using Microsoft.Extensions.DependencyInjection;
using Npgsql;

namespace KafkaClicks.Cli.Demo;

/// <summary>Demo advertisers and ads, written idempotently so `up --demo` can be run again and again.</summary>
public static class DemoData
{
    public const long DemoAdvertiserId = 1;
    public const int Advertisers = 3;
    public const int AdsPerAdvertiser = 10;
    public const long FirstAdId = 1;

    public static async Task SeedAsync(IServiceProvider services, CancellationToken cancellationToken)
    {
        var dataSource = services.GetRequiredService<NpgsqlDataSource>();
        var configuration = services.GetRequiredService<IConfiguration>();
        var key = configuration["Demo:AdvertiserApiKey"];
        await using var batch = dataSource.CreateBatch();
        for (long advertiser = 1; advertiser <= Advertisers; advertiser++)
        {
            var command = batch.CreateBatchCommand();
            command.CommandText = $"""
                INSERT INTO {Tables.Advertisers} (advertiser_id, name, api_key_hash) VALUES ($1, $2, $3)
                ON CONFLICT (advertiser_id) DO UPDATE SET name = EXCLUDED.name, api_key_hash = COALESCE(EXCLUDED.api_key_hash, {Tables.Advertisers}.api_key_hash)
                """;
            command.Parameters.Add(new NpgsqlParameter<long> { TypedValue = advertiser });
            command.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"Demo advertiser {advertiser}" });
            command.Parameters.Add(new NpgsqlParameter<byte[]?>
            {
                TypedValue = advertiser == DemoAdvertiserId && !string.IsNullOrEmpty(key) ? ApiKeyAuthenticator.Hash(key) : null,
            });
            batch.BatchCommands.Add(command);
            for (var i = 0; i < AdsPerAdvertiser; i++)
            {
                var adId = FirstAdId + ((advertiser - 1) * AdsPerAdvertiser) + i;
                var ad = batch.CreateBatchCommand();
                ad.CommandText = $"""
                    INSERT INTO {Tables.Ads} (ad_id, advertiser_id, redirect_url) VALUES ($1, $2, $3)
                    ON CONFLICT (ad_id) DO NOTHING
                    """;
                ad.Parameters.Add(new NpgsqlParameter<long> { TypedValue = adId });
                ad.Parameters.Add(new NpgsqlParameter<long> { TypedValue = advertiser });
                ad.Parameters.Add(new NpgsqlParameter<string> { TypedValue = $"https://example.com/advertiser-{advertiser}/ad-{adId}" });
                batch.BatchCommands.Add(ad);
            }
        }

        await batch.ExecuteNonQueryAsync(cancellationToken);
    }
}
