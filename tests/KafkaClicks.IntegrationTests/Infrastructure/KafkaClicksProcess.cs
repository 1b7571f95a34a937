using System.Collections.Concurrent;
using System.Diagnostics;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// The kafkaclicks program (kafkaclicks.dll beside the tests) as a child process, with its output kept for
/// diagnostics. <see cref="Kill"/> is a SIGKILL of the whole process tree, never a clean stop; disposing kills too.
/// </summary>
public sealed class KafkaClicksProcess : IAsyncDisposable
{
    private const int KeptLines = 400;
    private readonly Process _process;
    private readonly ConcurrentQueue<string> _lines = new();

    private KafkaClicksProcess(string name, Process process)
    {
        Name = name;
        _process = process;
    }

    public string Name { get; }

    public bool HasExited => _process.HasExited;

    /// <summary>The process id, to pause and resume it.</summary>
    public int Id => _process.Id;

    /// <summary>Starts <c>dotnet kafkaclicks.dll args</c> with <paramref name="environment"/> (KAFKACLICKS_CONFIG removed).</summary>
    public static KafkaClicksProcess Start(string name, IReadOnlyDictionary<string, string> environment, params string[] args)
    {
        var start = new ProcessStartInfo("dotnet")
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
            UseShellExecute = false,
            WorkingDirectory = AppContext.BaseDirectory,
        };
        start.ArgumentList.Add(Path.Combine(AppContext.BaseDirectory, "kafkaclicks.dll"));
        foreach (var arg in args)
        {
            start.ArgumentList.Add(arg);
        }

        foreach (var key in start.Environment.Keys.Where(k => k.StartsWith("KAFKACLICKS_", StringComparison.Ordinal)).ToList())
        {
            start.Environment.Remove(key);
        }

        start.Environment["KAFKACLICKS_Ingest__PublicBaseUrl"] = Infrastructure.ProductHost.PublicBaseUrl;
        foreach (var (key, value) in environment)
        {
            start.Environment[key] = value;
        }

        var process = new Process { StartInfo = start };
        var child = new KafkaClicksProcess(name, process);
        process.OutputDataReceived += (_, e) => child.Keep(e.Data);
        process.ErrorDataReceived += (_, e) => child.Keep(e.Data);
        process.Start();
        process.BeginOutputReadLine();
        process.BeginErrorReadLine();
        return child;
    }

    /// <summary>Waits for a line containing <paramref name="text"/>; fails with the output if the process exits or time runs out.</summary>
    public async Task<string> WaitForLineAsync(string text, TimeSpan timeout)
    {
        var clock = Stopwatch.StartNew();
        while (clock.Elapsed < timeout)
        {
            var line = _lines.FirstOrDefault(l => l.Contains(text, StringComparison.Ordinal));
            if (line is not null)
            {
                return line;
            }

            if (_process.HasExited)
            {
                _process.WaitForExit(); // drains the redirected output
                throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode} before printing '{text}':\n{Output()}");
            }

            await Task.Delay(50);
        }

        throw new TimeoutException($"{Name} did not print '{text}' within {timeout}:\n{Output()}");
    }

    /// <summary>Fails with the process output when it has exited on its own.</summary>
    public void EnsureRunning()
    {
        if (_process.HasExited)
        {
            _process.WaitForExit(); // drains the redirected output
            throw new InvalidOperationException($"{Name} exited with code {_process.ExitCode}:\n{Output()}");
        }
    }

    /// <summary>SIGKILL of the process and its children; returns once it is gone.</summary>
    public void Kill()
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
    }

    /// <summary>The last lines the process printed (stdout and stderr interleaved).</summary>
    public string Output() => $"--- {Name} output (last {KeptLines} lines) ---\n{string.Join('\n', _lines)}";

    public ValueTask DisposeAsync()
    {
        Kill();
        _process.Dispose();
        return ValueTask.CompletedTask;
    }

    private void Keep(string? line)
    {
        if (line is null)
        {
            return;
        }

        _lines.Enqueue(line);
        while (_lines.Count > KeptLines && _lines.TryDequeue(out _))
        {
        }
    }
}
