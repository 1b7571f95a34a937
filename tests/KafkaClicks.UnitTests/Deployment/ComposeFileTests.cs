using YamlDotNet.Core;
using YamlDotNet.RepresentationModel;

namespace KafkaClicks.UnitTests.Deployment;

/// <summary>docker-compose.kafka.yml is checked here because no Docker engine runs on the build machines.</summary>
public class ComposeFileTests
{
    private static readonly YamlMappingNode Root = Load();

    private static string RepositoryRoot
    {
        get
        {
            var directory = new DirectoryInfo(AppContext.BaseDirectory);
            while (directory is not null && !File.Exists(Path.Combine(directory.FullName, "docker-compose.kafka.yml")))
            {
                directory = directory.Parent;
            }

            Assert.NotNull(directory);
            return directory.FullName;
        }
    }

    private static YamlMappingNode Load()
    {
        var stream = new YamlStream();
        using var reader = new StreamReader(Path.Combine(RepositoryRoot, "docker-compose.kafka.yml"));
        // Merge keys (<<: *anchor) are resolved as Docker Compose resolves them.
        stream.Load(new MergingParser(new Parser(reader)));
        return (YamlMappingNode)stream.Documents[0].RootNode;
    }

    private static YamlMappingNode Services => (YamlMappingNode)Root["services"];

    private static YamlMappingNode Service(string name) => (YamlMappingNode)Services[name];

    private static string? Scalar(YamlMappingNode node, string key) =>
        node.Children.TryGetValue(key, out var value) && value is YamlScalarNode scalar ? scalar.Value : null;

    private static IEnumerable<string> Names => Services.Children.Keys.Cast<YamlScalarNode>().Select(k => k.Value!);

    [Fact]
    public void Every_role_runs_in_its_own_container_with_two_ingest_and_two_aggregators()
    {
        var roles = Names.Where(n => Service(n).Children.TryGetValue("command", out var c) && c is YamlSequenceNode seq && seq.Children.Count == 3)
            .ToDictionary(n => n, n => ((YamlScalarNode)((YamlSequenceNode)Service(n)["command"]).Children[2]).Value);
        Assert.Equal(2, roles.Values.Count(r => r == "ingest"));
        Assert.Equal(2, roles.Values.Count(r => r == "aggregator"));
        foreach (var role in new[] { "sink", "query", "reconciler" })
        {
            Assert.Single(roles.Values, r => r == role);
        }

        Assert.Contains("schema-registry", Names);
        Assert.Contains("prometheus", Names);
        Assert.Contains("grafana", Names);
    }

    [Fact]
    public void Kafka_runs_three_kraft_brokers_with_replication_three_and_two_in_sync()
    {
        var brokers = Names.Where(n => n.StartsWith("kafka-", StringComparison.Ordinal)).ToList();
        Assert.Equal(3, brokers.Count);
        foreach (var broker in brokers)
        {
            var environment = (YamlMappingNode)Service(broker)["environment"];
            Assert.Equal("broker,controller", Scalar(environment, "KAFKA_PROCESS_ROLES"));
            Assert.Equal("3", Scalar(environment, "KAFKA_DEFAULT_REPLICATION_FACTOR"));
            Assert.Equal("2", Scalar(environment, "KAFKA_MIN_INSYNC_REPLICAS"));
            Assert.Equal("false", Scalar(environment, "KAFKA_AUTO_CREATE_TOPICS_ENABLE"));
        }
    }

    [Fact]
    public void Every_long_running_service_has_a_healthcheck_and_a_restart_policy()
    {
        foreach (var name in Names.Where(n => n != "migrate"))
        {
            Assert.True(Service(name).Children.ContainsKey("healthcheck"), $"{name} has no healthcheck");
            Assert.Equal("unless-stopped", Scalar(Service(name), "restart"));
        }

        Assert.Equal("no", Scalar(Service("migrate"), "restart"));
    }

    [Fact]
    public void Roles_wait_for_the_migration_and_keep_state_and_spool_on_volumes()
    {
        foreach (var name in Names.Where(n => n.StartsWith("ingest-", StringComparison.Ordinal) || n.StartsWith("aggregator-", StringComparison.Ordinal)
                     || n is "sink" or "query" or "reconciler"))
        {
            var dependsOn = (YamlMappingNode)Service(name)["depends_on"];
            Assert.Equal("service_completed_successfully", Scalar((YamlMappingNode)dependsOn["migrate"], "condition"));
            var environment = (YamlMappingNode)Service(name)["environment"];
            Assert.Equal("3", Scalar(environment, "KAFKACLICKS_Kafka__ReplicationFactor"));
            Assert.Equal("7.00:00:00", Scalar(environment, "KAFKACLICKS_Kafka__RawRetention"));
        }

        var volumes = ((YamlMappingNode)Root["volumes"]).Children.Keys.Cast<YamlScalarNode>().Select(k => k.Value).ToList();
        foreach (var name in new[] { "ingest-1", "ingest-2", "aggregator-1", "aggregator-2", "kafka-1", "timescaledb" })
        {
            var mounts = ((YamlSequenceNode)Service(name)["volumes"]).Children.Cast<YamlScalarNode>().Select(v => v.Value!.Split(':')[0]);
            Assert.Contains(mounts, volumes.Contains);
        }
    }

    [Fact]
    public void Both_aggregators_process_exactly_once_on_the_replicated_cluster()
    {
        foreach (var name in Names.Where(n => n.StartsWith("aggregator-", StringComparison.Ordinal)))
        {
            var environment = (YamlMappingNode)Service(name)["environment"];
            var guarantee = Scalar(environment, "KAFKACLICKS_Aggregator__Guarantee");
            Assert.True(Enum.TryParse<KafkaClicks.Topology.AggregatorGuarantee>(guarantee, out var parsed), $"{name}: '{guarantee}' is not a guarantee");
            Assert.Equal(KafkaClicks.Topology.AggregatorGuarantee.ExactlyOnce, parsed);
        }

        // Kafka's transaction log must survive a broker: the brokers keep it on three replicas, two in sync.
        var kafkaEnvironment = (YamlMappingNode)Service("kafka-1")["environment"];
        Assert.Equal("3", Scalar(kafkaEnvironment, "KAFKA_TRANSACTION_STATE_LOG_REPLICATION_FACTOR"));
        Assert.Equal("2", Scalar(kafkaEnvironment, "KAFKA_TRANSACTION_STATE_LOG_MIN_ISR"));
    }

    /// <summary>
    /// KRaft brokers format their storage only with a cluster id that is a UUID written as `kafka-storage random-uuid`
    /// writes it: 22 characters of URL-safe base64 without padding, 16 bytes; every broker of the cluster has the same.
    /// </summary>
    [Fact]
    public void The_kraft_cluster_id_is_a_canonical_uuid_shared_by_every_broker()
    {
        var ids = Names.Where(n => n.StartsWith("kafka-", StringComparison.Ordinal))
            .Select(n => Scalar((YamlMappingNode)Service(n)["environment"], "CLUSTER_ID"))
            .ToList();
        Assert.Equal(3, ids.Count);
        var id = Assert.Single(ids.Distinct());
        Assert.NotNull(id);
        Assert.Equal(22, id.Length);
        Assert.Matches("^[A-Za-z0-9_-]{22}$", id);
        var bytes = Convert.FromBase64String(id.Replace('-', '+').Replace('_', '/') + "==");
        Assert.Equal(16, bytes.Length);
        Assert.Equal(id, Convert.ToBase64String(bytes).TrimEnd('=').Replace('+', '-').Replace('/', '_'));
    }

    /// <summary>Images are pinned to versions (no "latest"); TimescaleDB to the release the TimescaleDB test lane runs.</summary>
    [Fact]
    public void Images_are_pinned_to_versions_and_timescaledb_to_the_tested_release()
    {
        var images = Names.Select(n => Scalar(Service(n), "image")).OfType<string>().Where(i => !i.StartsWith("kafkaclicks:", StringComparison.Ordinal)).ToList();
        Assert.NotEmpty(images);
        foreach (var image in images)
        {
            var tag = image.Contains(':', StringComparison.Ordinal) ? image[(image.LastIndexOf(':') + 1)..] : "";
            Assert.True(tag.Length > 0 && !tag.StartsWith("latest", StringComparison.Ordinal), $"{image} is not pinned to a version");
        }

        Assert.Equal("timescale/timescaledb:2.28.3-pg15", Scalar(Service("timescaledb"), "image"));
    }

    [Fact]
    public void No_secret_is_written_in_the_file()
    {
        foreach (var name in Names)
        {
            if (Service(name).Children.TryGetValue("environment", out var node) && node is YamlMappingNode environment)
            {
                foreach (var (key, value) in environment.Children)
                {
                    var text = ((YamlScalarNode)value).Value ?? "";
                    var k = ((YamlScalarNode)key).Value!;
                    if (k.Contains("KEY", StringComparison.Ordinal) || k.Contains("PASSWORD", StringComparison.Ordinal) || text.Contains("Password=", StringComparison.Ordinal))
                    {
                        Assert.Contains("${", text, StringComparison.Ordinal);
                    }
                }
            }
        }
    }

    [Fact]
    public void The_public_ingest_mints_links_to_its_public_url_trusts_only_its_network_and_hides_operator_endpoints()
    {
        foreach (var name in new[] { "ingest-1", "ingest-2" })
        {
            var environment = (YamlMappingNode)Service(name)["environment"];
            Assert.StartsWith("${KAFKACLICKS_PUBLIC_BASE_URL", Scalar(environment, "KAFKACLICKS_Ingest__PublicBaseUrl"), StringComparison.Ordinal);
            Assert.NotNull(Scalar(environment, "KAFKACLICKS_Http__TrustedProxies__0"));
        }

        var volume = ((YamlScalarNode)((YamlSequenceNode)Service("ingest")["volumes"]).Children[0]).Value!;
        var config = File.ReadAllText(Path.Combine(RepositoryRoot, volume.Split(':')[0]));
        Assert.Contains("location = /metrics { return 404; }", config, StringComparison.Ordinal);
        Assert.Contains("location ^~ /openapi/ { return 404; }", config, StringComparison.Ordinal);
    }
}
