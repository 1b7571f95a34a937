using System.Collections.Concurrent;
using System.Diagnostics;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// The published command line (<c>CLI_DLL</c>, set by infra/dev.sh bench) as a child process, configured only through
/// <c>KAFKACLICKS_</c> variables made from the given settings; its output is kept for diagnostics. Disposing kills it.
/// </summary>
public sealed class CliProcess : IAsyncDisposable
{
    private const int KeptLines = 2000;
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();
    private readonly ConcurrentQueue<string> _stdout = new();

    private CliProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public int Id => _process.Id;

    public static CliProcess Start(string name, IReadOnlyDictionary<string, string?> settings, params string[] args)
    {
        var dll = Environment.GetEnvironmentVariable("CLI_DLL") is { Length: > 0 } path
            ? path
            : throw new InvalidOperationException("CLI_DLL is not set: run the benchmark through infra/dev.sh bench");
        var start = new ProcessStartInfo("dotnet") { RedirectStandardOutput = true, RedirectStandardError = true, UseShellExecute = false };
        start.ArgumentList.Add(dll);
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var (key, value) in settings)
        {
            start.Environment["KAFKACLICKS_" + key.Replace(":", "__", StringComparison.Ordinal)] = value;
        }

        var process = new Process { StartInfo = start };
        var child = new CliProcess(name, process);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data, stdout: true);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data, stdout: false);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>The first line containing <paramref name="text"/>, once printed; fails with the output if the process exits first or in 2 minutes.</summary>
    public async Task<string> WaitForLineAsync(string text)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < TimeSpan.FromMinutes(2))
        {
            if (_lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal)) is { } line)
            {
                return line;
            }

            if (_process.HasExited)
            {
                throw Failed($"exited with code {_process.ExitCode} before printing '{text}'");
            }

            await Task.Delay(20);
        }

        throw Failed($"did not print '{text}' within 2 minutes");
    }

    /// <summary>Waits for the process to end: its exit code and standard output.</summary>
    public async Task<(int ExitCode, string Output)> ExitAsync()
    {
        await _process.WaitForExitAsync();
        return (_process.ExitCode, string.Join('\n', _stdout));
    }

    public ValueTask DisposeAsync()
    {
        try
        {
            if (!_process.HasExited)
            {
                _process.Kill(entireProcessTree: true);
            }
        }
        catch (InvalidOperationException)
        {
            // Exited meanwhile.
        }

        _process.WaitForExit(10_000);
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    private InvalidOperationException Failed(string what)
    {
        if (_process.HasExited)
        {
            _process.WaitForExit(); // drains the redirected output
        }

        return new InvalidOperationException($"{Name} {what}:\n{LastLines()}");
    }

    /// <summary>The last 100 lines it printed, standard output and error interleaved.</summary>
    public string LastLines() => string.Join('\n', _lines.TakeLast(100));

    private void Keep(string? line, bool stdout)
    {
        if (line is null)
        {
            return;
        }

        Append(_lines, line);
        if (stdout)
        {
            Append(_stdout, line);
        }
    }

    private static void Append(ConcurrentQueue<string> lines, string line)
    {
        lines.Enqueue(line);
        while (lines.Count > KeptLines && lines.TryDequeue(out _))
        {
        }
    }
}
