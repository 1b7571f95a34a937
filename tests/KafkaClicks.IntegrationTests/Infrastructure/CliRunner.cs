using System.Diagnostics;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Runs the built kafkaclicks program as an SRE would, without the developer's local configuration file.</summary>
public static class CliRunner
{
    public static async Task<(int ExitCode, string Output, string Error)> RunAsync(IDictionary<string, string>? environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "kafkaclicks.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        start.Environment.Remove("KAFKACLICKS_CONFIG");
        foreach (var (key, value) in environment ?? new Dictionary<string, string>())
        {
            start.Environment[key] = value;
        }

        using var process = Process.Start(start)!;
        var output = process.StandardOutput.ReadToEndAsync();
        var error = process.StandardError.ReadToEndAsync();
        using var timeout = new CancellationTokenSource(TimeSpan.FromSeconds(90));
        try
        {
            await process.WaitForExitAsync(timeout.Token);
        }
        catch (OperationCanceledException)
        {
            // Still running (a server that should have refused to start): stop it, so no test leaves it behind.
            process.Kill(entireProcessTree: true);
            await process.WaitForExitAsync();
            throw new TimeoutException($"kafkaclicks {string.Join(' ', args)} did not exit within 90 s; its errors: {await error}");
        }

        return (process.ExitCode, await output, await error);
    }
}
