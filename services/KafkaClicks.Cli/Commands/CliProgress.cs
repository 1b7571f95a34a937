using System.Diagnostics;
using KafkaClicks.Reconciler;
using Spectre.Console;

namespace KafkaClicks.Cli.Commands;

/// <summary>Progress of long work: a bar with rate and ETA on a terminal, plain lines on stderr otherwise.</summary>
public static class CliProgress
{
    public static async Task<T> RunAsync<T>(string what, string unit, bool quiet, Func<IProgress<ReadProgress>, Task<T>> work)
    {
        if (!quiet && !Console.IsOutputRedirected && AnsiConsole.Profile.Capabilities.Interactive)
        {
            T result = default!;
            await AnsiConsole.Progress()
                .Columns(new TaskDescriptionColumn(), new ProgressBarColumn(), new PercentageColumn(), new ItemRateColumn(unit), new RemainingTimeColumn())
                .StartAsync(async context =>
                {
                    var task = context.AddTask(what, maxValue: 1);
                    result = await work(new Progress<ReadProgress>(p =>
                    {
                        task.MaxValue = Math.Max(1, p.Total);
                        task.Value = p.Read;
                    }));
                    task.Value = task.MaxValue;
                });
            return result;
        }

        var clock = Stopwatch.StartNew();
        var last = TimeSpan.Zero;
        return await work(new Progress<ReadProgress>(p =>
        {
            if (clock.Elapsed - last < TimeSpan.FromSeconds(1) && p.Read < p.Total)
            {
                return;
            }

            last = clock.Elapsed;
            var rate = p.Read / Math.Max(clock.Elapsed.TotalSeconds, 0.001);
            var eta = rate > 0 ? TimeSpan.FromSeconds((p.Total - p.Read) / rate) : TimeSpan.Zero;
            Console.Error.WriteLine($"{what}: {p.Read:N0}/{p.Total:N0} {unit} ({rate:N0}/s, eta {eta:mm\\:ss})");
        }));
    }

    /// <summary>Items per second, for counts rather than bytes.</summary>
    private sealed class ItemRateColumn(string unit) : ProgressColumn
    {
        public override Spectre.Console.Rendering.IRenderable Render(Spectre.Console.Rendering.RenderOptions options, ProgressTask task, TimeSpan deltaTime) =>
            new Text(task.Speed is { } speed ? $"{speed:N0} {unit}/s" : "", Style.Plain);
    }
}
