using KafkaClicks.ServiceDefaults;

namespace KafkaClicks.UnitTests.ServiceDefaults;

public class DurationsTests
{
    [Theory]
    [InlineData("500ms", 0, 0, 0, 0, 500)]
    [InlineData("60s", 0, 0, 1, 0, 0)]
    [InlineData("5m", 0, 0, 5, 0, 0)]
    [InlineData("1h", 0, 1, 0, 0, 0)]
    [InlineData("1d", 1, 0, 0, 0, 0)]
    [InlineData("1h30m", 0, 1, 30, 0, 0)]
    [InlineData("2d3h4m5s6ms", 2, 3, 4, 5, 6)]
    [InlineData(" 90s ", 0, 0, 1, 30, 0)]
    [InlineData("00:01:00", 0, 0, 1, 0, 0)]
    [InlineData("1.02:03:04.5", 1, 2, 3, 4, 500)]
    [InlineData("0s", 0, 0, 0, 0, 0)]
    public void Reads_units_and_the_TimeSpan_form(string text, int days, int hours, int minutes, int seconds, int milliseconds)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(new TimeSpan(days, hours, minutes, seconds, milliseconds), value);
    }

    [Theory]
    [InlineData("-5m", -5)]
    [InlineData("-00:05:00", -5)]
    public void Reads_a_negative_duration_so_the_caller_can_say_it_must_be_positive(string text, int minutes)
    {
        Assert.True(Durations.TryParse(text, out var value));
        Assert.Equal(TimeSpan.FromMinutes(minutes), value);
    }

    [Theory]
    [InlineData(null)]
    [InlineData("")]
    [InlineData("60")]
    [InlineData("60x")]
    [InlineData("s")]
    [InlineData("1.5h")]
    [InlineData("5m1h")]
    [InlineData("1m1m")]
    [InlineData("1h 30m")]
    [InlineData("+5m")]
    [InlineData("--5m")]
    [InlineData("-")]
    [InlineData("5M")]
    [InlineData("00:61:00")]
    [InlineData("99999999999999d")]
    public void Refuses_anything_else(string? text)
    {
        Assert.False(Durations.TryParse(text, out _));
    }
}
