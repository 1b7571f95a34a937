using System.CommandLine;
using System.CommandLine.Help;
using System.Globalization;
using System.Security.Cryptography;
using System.Text.Json;
using System.Text.RegularExpressions;
using KafkaClicks.Cli.Commands;
using KafkaClicks.Ingest;
using KafkaClicks.IntegrationTests.Infrastructure;
using KafkaClicks.Migrations;
using Microsoft.Extensions.Logging.Abstractions;
using Microsoft.Extensions.Options;

namespace KafkaClicks.IntegrationTests.Cli;

/// <summary>The kafkaclicks program as an SRE runs it: exit codes and messages, never a stack trace.</summary>
public class CliTests(PostgresServer postgres) : IClassFixture<PostgresServer>
{
    [Theory]
    [InlineData("unknown role 'nope'", "run", "--roles", "nope")]
    [InlineData("Option '--roles' is required", "run")]
    [InlineData("Unrecognized command or argument 'frobnicate'", "frobnicate")]
    [InlineData("--lateness must be zero or positive", "reconcile", "--from", "2026-11-29T10:00Z", "--to", "2026-11-29T11:00Z", "--lateness=-00:05:00")]
    [InlineData("'0001-01-01T00:00:00Z' is not an ISO-8601 instant between 2000-01-01 and 9000-01-01", "reconcile", "--from", "0001-01-01T00:00:00Z", "--to", "2026-11-29T11:00Z")]
    [InlineData("'5/1/2026' is not an ISO-8601 instant", "replay", "--topic", "clicks.raw", "--to-topic", "x", "--from", "5/1/2026", "--to", "2026-11-29T11:00Z")]
    [InlineData("--port must be between 1 and 65535", "broker", "--port", "70000")]
    [InlineData("--url must be an absolute http(s) URL, not 'localhost'", "loadgen", "--url", "localhost")]
    public async Task Bad_arguments_exit_2_with_a_message(string message, params string[] args)
    {
        var (exitCode, _, error) = await CliRunner.RunAsync(null, args);
        Assert.Equal(2, exitCode);
        Assert.Contains(message, error, StringComparison.Ordinal);
        Assert.Contains("--help", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_against_an_unreachable_database_exits_1_with_a_clear_message()
    {
        var (exitCode, _, error) = await CliRunner.RunAsync(
            new Dictionary<string, string> { ["KAFKACLICKS_ConnectionStrings__Postgres"] = "Host=127.0.0.1;Port=1;Username=postgres;Timeout=3" }, "migrate");
        Assert.Equal(1, exitCode);
        Assert.StartsWith("kafkaclicks: PostgreSQL:", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_aggregator_asked_for_exactly_once_on_the_embedded_broker_or_a_bad_guarantee_or_commit_interval_exits_1_and_says_what_to_change()
    {
        static async Task<string> RefusedAsync(string key, string value)
        {
            var (exitCode, _, error) = await CliRunner.RunAsync(new Dictionary<string, string>
            {
                ["KAFKACLICKS_Kafka__BootstrapServers"] = "",
                [key] = value,
            }, "run", "--roles", "aggregator");
            Assert.Equal(1, exitCode);
            Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
            return error;
        }

        var exactlyOnce = await RefusedAsync("KAFKACLICKS_Aggregator__Guarantee", "ExactlyOnce");
        Assert.StartsWith("kafkaclicks: configuration: Aggregator:Guarantee is ExactlyOnce.", exactlyOnce, StringComparison.Ordinal);
        Assert.Contains("Set Kafka:BootstrapServers to a Kafka cluster, or Aggregator:Guarantee to AtLeastOnce.", exactlyOnce, StringComparison.Ordinal);

        var unknown = await RefusedAsync("KAFKACLICKS_Aggregator__Guarantee", "Twice");
        Assert.StartsWith("kafkaclicks: configuration: Aggregator:", unknown, StringComparison.Ordinal);
        Assert.Contains("Twice", unknown, StringComparison.Ordinal);

        var negativeCommit = await RefusedAsync("KAFKACLICKS_Aggregator__CommitInterval", "-00:00:01");
        Assert.Equal("kafkaclicks: configuration: Aggregator:CommitInterval must be positive.", negativeCommit.Trim());
    }

    [Fact]
    public async Task An_ingest_instance_without_a_public_base_url_outside_development_exits_1_and_says_what_to_set()
    {
        var (exitCode, _, error) = await CliRunner.RunAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_Kafka__BootstrapServers"] = "",
            ["KAFKACLICKS_Ingest__PublicBaseUrl"] = "",
            ["KAFKACLICKS_Ingest__Tokens__ActiveKeyId"] = "k1",
            ["KAFKACLICKS_Ingest__Tokens__Keys__k1"] = Convert.ToBase64String(new byte[32]),
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = "Host=127.0.0.1;Port=1;Username=postgres",
            ["KAFKACLICKS_ConnectionStrings__Redis"] = "127.0.0.1:1,abortConnect=false",
        }, "run", "--roles", "ingest", "--urls", "http://127.0.0.1:0");
        Assert.Equal(1, exitCode);
        Assert.Contains("Ingest:PublicBaseUrl is not set", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    [Trait("Category", "Billing")]
    public async Task An_ingest_instance_given_a_spool_folder_another_process_holds_exits_1_and_names_the_folder()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var directory = Path.Combine(Path.GetTempPath(), "kafkaclicks-cli-spool", Guid.NewGuid().ToString("N"));
        var held = Options.Create(new IngestOptions { Spool = new SpoolOptions { Directory = directory } });
        await using var running = new ClickSpool(held, TimeProvider.System, NullLogger<ClickSpool>.Instance);
        var state = Path.Combine(Path.GetTempPath(), "kafkaclicks-cli-spool", Guid.NewGuid().ToString("N"));

        var (exitCode, _, error) = await CliRunner.RunAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_Kafka__BootstrapServers"] = "",
            ["KAFKACLICKS_Ingest__PublicBaseUrl"] = ProductHost.PublicBaseUrl,
            ["KAFKACLICKS_Ingest__Tokens__ActiveKeyId"] = "k1",
            ["KAFKACLICKS_Ingest__Tokens__Keys__k1"] = Convert.ToBase64String(new byte[32]),
            ["KAFKACLICKS_Ingest__Spool__Directory"] = directory,
            ["KAFKACLICKS_Ingest__AdDirectory__Path"] = Path.Combine(state, "ad-directory"),
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_ConnectionStrings__Redis"] = RedisServer.ConnectionString,
        }, "run", "--roles", "ingest", "--urls", "http://127.0.0.1:0");

        Assert.Equal(1, exitCode);
        Assert.Contains($"kafkaclicks: configuration: Ingest:Spool:Directory {directory} is in use by another ingest process", error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        if (Directory.Exists(state))
        {
            Directory.Delete(state, recursive: true);
        }
    }

    [Fact]
    public async Task A_configuration_file_that_is_missing_or_a_connection_string_that_does_not_parse_exits_1_in_one_line()
    {
        var missing = await CliRunner.RunAsync(new Dictionary<string, string> { ["KAFKACLICKS_CONFIG"] = "/nonexistent/kafkaclicks.json" }, "migrate");
        Assert.Equal(1, missing.ExitCode);
        Assert.StartsWith("kafkaclicks: ", missing.Error, StringComparison.Ordinal);
        Assert.Contains("/nonexistent/kafkaclicks.json", missing.Error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", missing.Error, StringComparison.Ordinal);

        var mistyped = await CliRunner.RunAsync(new Dictionary<string, string> { ["KAFKACLICKS_ConnectionStrings__Postgres"] = "Hostt=127.0.0.1;Username=postgres" }, "migrate");
        Assert.Equal(1, mistyped.ExitCode);
        Assert.StartsWith("kafkaclicks: ", mistyped.Error, StringComparison.Ordinal);
        Assert.Contains("hostt", mistyped.Error, StringComparison.OrdinalIgnoreCase);
        Assert.Single(mistyped.Error.Trim().Split('\n'));
    }

    [Fact]
    public async Task A_role_whose_loop_fails_stops_the_process_with_exit_1_and_the_reason()
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var (exitCode, _, error) = await CliRunner.RunAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_Kafka__BootstrapServers"] = "",
            ["KAFKACLICKS_Urls"] = "http://127.0.0.1:0",
            // Accepted by configuration binding, refused by librdkafka when the sink builds its consumer.
            ["KAFKACLICKS_Kafka__Consumer__MaxPollIntervalMs"] = "1",
        }, "run", "--roles", "sink");
        Assert.Equal(1, exitCode);
        Assert.Contains("kafkaclicks: stopped because MinuteCountSink failed: `max.poll.interval.ms`", error, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("KAFKACLICKS_Query__QueueTimeout", "-00:00:01", "QueueTimeout")]
    [InlineData("KAFKACLICKS_Query__CacheTimeout", "-00:00:01", "CacheTimeout")]
    [InlineData("KAFKACLICKS_Reconciler__Lateness", "-00:05:00", "Reconciler:Lateness must be zero or positive")]
    public async Task A_negative_duration_stops_the_start_with_a_message_naming_it(string variable, string value, string message)
    {
        await using var db = await postgres.CreateDatabaseAsync();
        var (exitCode, _, error) = await CliRunner.RunAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString,
            ["KAFKACLICKS_Kafka__BootstrapServers"] = "",
            ["KAFKACLICKS_Urls"] = "http://127.0.0.1:0",
            [variable] = value,
        }, "run", "--roles", "query,reconciler");
        Assert.Equal(1, exitCode);
        Assert.StartsWith("kafkaclicks: configuration:", error, StringComparison.Ordinal);
        Assert.Contains(message, error, StringComparison.Ordinal);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
    }

    [Fact]
    public async Task Migrate_applies_then_finds_nothing_to_do()
    {
        await using var db = await postgres.CreateDatabaseAsync(migrate: false);
        var environment = new Dictionary<string, string> { ["KAFKACLICKS_ConnectionStrings__Postgres"] = db.ConnectionString };
        var first = await CliRunner.RunAsync(environment, "migrate");
        var second = await CliRunner.RunAsync(environment, "migrate");
        // The flavors' migrations differ in number (some exist for one flavor only).
        var count = DatabaseMigrator.Bundled(await db.FlavorAsync()).Count;

        Assert.Equal(0, first.ExitCode);
        Assert.Contains($"{count} applied, 0 already applied", first.Output, StringComparison.Ordinal);
        Assert.Equal(0, second.ExitCode);
        Assert.Contains($"0 applied, {count} already applied", second.Output, StringComparison.Ordinal);
    }

    /// <summary>Every command of the program by its path ("up", "topics describe"), from the command tree itself.</summary>
    public static TheoryData<string> CommandPaths()
    {
        var data = new TheoryData<string>();
        foreach (var (path, _) in Commands(KafkaClicksCommands.Root(), ""))
        {
            data.Add(path);
        }

        return data;
    }

    [Theory]
    [MemberData(nameof(CommandPaths))]
    public async Task Every_command_is_listed_in_its_parents_help_and_has_help_of_its_own(string path)
    {
        var words = path.Split(' ');
        var parent = await CliRunner.RunAsync(null, [.. words[..^1], "--help"]);
        Assert.Equal(0, parent.ExitCode);
        Assert.Matches($@"(?m)^  {Regex.Escape(words[^1])}\s", parent.Output);

        var (exitCode, output, _) = await CliRunner.RunAsync(null, [.. words, "--help"]);
        Assert.Equal(0, exitCode);
        Assert.Contains($"kafkaclicks {path}", output, StringComparison.Ordinal);
        Assert.Contains("Description:", output, StringComparison.Ordinal);
    }

    /// <summary>
    /// For every command: an option it does not have, and each of its options that takes a typed value (a number, a
    /// duration, an instant, a URL) given one that is none; then text values the commands check themselves, and values
    /// out of range.
    /// </summary>
    public static TheoryData<string, string, string> MalformedArguments()
    {
        var data = new TheoryData<string, string, string>();
        foreach (var (path, command) in Commands(KafkaClicksCommands.Root(), ""))
        {
            data.Add(path, "--no-such-option", "1");
            foreach (var option in command.Options.Where(o => o is not HelpOption && o.ValueType != typeof(bool) && o.ValueType != typeof(string) && o.ValueType != typeof(string[])))
            {
                data.Add(path, option.Name, "1x");
            }
        }

        data.Add("run", "--roles", "nope");
        data.Add("loadgen", "--url", "ftp://example.com");
        data.Add("loadgen", "--duration", "0s");
        data.Add("loadgen", "--duration", "25h");
        data.Add("loadgen", "--rate", "1.5");
        data.Add("loadgen", "--hot-share", "-0.1");
        data.Add("reconcile", "--lateness", "-1m");
        data.Add("reconcile", "--from", "2026-02-30");
        data.Add("replay", "--rate", "0");
        data.Add("runs", "--last", "99999999999");
        data.Add("broker", "--port", "0");
        data.Add("loadgen", "--ads", "0");
        data.Add("loadgen", "--duplicates", "2");
        data.Add("loadgen", "--connections", "0");
        data.Add("reconcile", "--readers", "0");
        data.Add("run", "--urls", "nope");
        data.Add("up", "--urls", "ftp://127.0.0.1:8080");
        data.Add("up", "--urls", "http://127.0.0.1:8080;http://");
        data.Add("lag", "--group", " ");
        return data;
    }

    /// <summary>Values that are each well formed but do not go together, and arguments missing or extra.</summary>
    public static TheoryData<string, string[]> InconsistentArguments() => new()
    {
        { "replay", ["--topic", "clicks.raw", "--to-topic", "clicks.copy", "--from", "2026-01-02T00:00:00Z", "--to", "2026-01-01T00:00:00Z"] },
        { "replay", ["--topic", "clicks.raw", "--to-topic", "clicks.raw", "--from", "2026-01-01T00:00:00Z", "--to", "2026-01-02T00:00:00Z"] },
        { "reconcile", ["--from", "2026-01-01T01:00:00Z", "--to", "2026-01-01T01:00:00Z"] },
        { "topics describe", [] },
        { "topics describe", ["clicks.raw", "clicks.minute"] },
        { "run", ["--urls", "http://127.0.0.1:8080"] },
    };

    [Theory]
    [MemberData(nameof(InconsistentArguments))]
    public async Task Arguments_that_do_not_go_together_exit_2_with_one_line_and_no_stack_trace(string path, string[] arguments)
    {
        var (exitCode, output, error) = await CliRunner.RunAsync(null, [.. path.Split(' '), .. arguments]);

        Assert.Equal(2, exitCode);
        Assert.Empty(output);
        var line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("kafkaclicks: ", line, StringComparison.Ordinal);
        Assert.EndsWith($"(see 'kafkaclicks {path} --help')", line, StringComparison.Ordinal);
    }

    [Theory]
    [MemberData(nameof(MalformedArguments))]
    public async Task A_malformed_value_exits_2_with_one_line_naming_it_and_no_stack_trace(string path, string option, string value)
    {
        var (exitCode, output, error) = await CliRunner.RunAsync(null, [.. path.Split(' '), option, value]);

        Assert.Equal(2, exitCode);
        Assert.Empty(output);
        var line = Assert.Single(error.Split('\n', StringSplitOptions.RemoveEmptyEntries | StringSplitOptions.TrimEntries));
        Assert.StartsWith("kafkaclicks: ", line, StringComparison.Ordinal);
        Assert.Contains($"'{value}'", line, StringComparison.Ordinal);
        Assert.EndsWith($"(see 'kafkaclicks {path} --help')", line, StringComparison.Ordinal);
    }

    [Theory]
    [InlineData("1500ms")]
    [InlineData("1s")]
    [InlineData("00:00:01")]
    public async Task Loadgen_takes_its_duration_in_units_or_as_a_TimeSpan(string duration)
    {
        var key = Convert.ToBase64String(RandomNumberGenerator.GetBytes(32));
        var (exitCode, output, error) = await CliRunner.RunAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_Ingest__Tokens__ActiveKeyId"] = "cli",
            ["KAFKACLICKS_Ingest__Tokens__Keys__cli"] = key,
        }, "loadgen", "--url", $"http://127.0.0.1:{FreePorts.Next().ToString(CultureInfo.InvariantCulture)}", "--rate", "5", "--duration", duration, "--json");

        // Nothing listens on the port: every click fails, so the run ends 1, having sent clicks for the whole duration.
        Assert.Equal(1, exitCode);
        Assert.DoesNotContain("   at ", error, StringComparison.Ordinal);
        using var result = JsonDocument.Parse(output);
        Assert.True(result.RootElement.GetProperty("sent").GetInt64() > 0);
        Assert.Equal(result.RootElement.GetProperty("sent").GetInt64(), result.RootElement.GetProperty("errors").GetInt64());
    }

    [Fact]
    public async Task Librdkafkas_own_log_lines_go_through_the_logger_to_stderr_and_the_failure_ends_in_one_line()
    {
        // Nothing listens on the port: librdkafka logs each refused connection until the metadata request times out.
        var (exitCode, output, error) = await CliRunner.RunAsync(new Dictionary<string, string>
        {
            ["KAFKACLICKS_Kafka__BootstrapServers"] = $"127.0.0.1:{FreePorts.Next().ToString(CultureInfo.InvariantCulture)}",
        }, "topics", "list", "--json");

        Assert.Equal(1, exitCode);
        Assert.Empty(output);
        var lines = error.Split('\n', StringSplitOptions.RemoveEmptyEntries);
        Assert.StartsWith("kafkaclicks: Kafka: ", lines[^1], StringComparison.Ordinal);
        Assert.NotEmpty(lines[..^1]);
        Assert.All(lines[..^1], line => Assert.Matches(@"^\d\d:\d\d:\d\d \w+: \S+\[9201\] librdkafka rdkafka#consumer-\d+ [A-Z]+: ", line));
    }

    private static IEnumerable<(string Path, Command Command)> Commands(Command parent, string prefix)
    {
        foreach (var command in parent.Subcommands)
        {
            var path = prefix + command.Name;
            yield return (path, command);
            foreach (var child in Commands(command, path + " "))
            {
                yield return child;
            }
        }
    }
}
