using KafkaClicks.ServiceDefaults;
using Npgsql;

namespace KafkaClicks.UnitTests.ServiceDefaults;

public class PostgresPoolDefaultsTests
{
    [Fact]
    public void Prepares_often_run_statements_and_skips_the_reset_when_the_connection_string_is_silent()
    {
        var builder = new NpgsqlConnectionStringBuilder(ServiceDefaultsExtensions.WithPoolDefaults("Host=db;Database=kafkaclicks;Username=kc"));

        Assert.Equal(64, builder.MaxAutoPrepare);
        Assert.True(builder.NoResetOnClose);
        Assert.Equal("-c jit=off", builder.Options);
        Assert.Equal("db", builder.Host);
        Assert.Equal("kafkaclicks", builder.Database);
    }

    [Theory]
    [InlineData("Host=db;Max Auto Prepare=0;No Reset On Close=false")]
    [InlineData("Host=db;MaxAutoPrepare=0;NoResetOnClose=false")]
    [InlineData("Host=db;max auto prepare=0;no reset on close=False")]
    public void Keeps_what_the_connection_string_sets(string connectionString)
    {
        // Behind PgBouncer in transaction mode auto-preparation has to be off: what the operator set is kept.
        var builder = new NpgsqlConnectionStringBuilder(ServiceDefaultsExtensions.WithPoolDefaults(connectionString));

        Assert.Equal(0, builder.MaxAutoPrepare);
        Assert.False(builder.NoResetOnClose);
    }

    [Theory]
    [InlineData("Host=db;Options=-c statement_timeout=5000", "-c statement_timeout=5000 -c jit=off")]
    [InlineData("Host=db;Options=-c jit=on", "-c jit=on")]
    public void Turns_jit_off_beside_the_options_given_unless_they_set_it(string connectionString, string options)
    {
        var builder = new NpgsqlConnectionStringBuilder(ServiceDefaultsExtensions.WithPoolDefaults(connectionString));

        Assert.Equal(options, builder.Options ?? "");
    }
}
