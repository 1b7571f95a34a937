using System.Globalization;

namespace KafkaClicks.Benchmarks;

/// <summary>
/// CPU time (user + system) from /proc, in clock ticks: a process's own (all its threads), the time of its children it
/// has reaped, and its live threads' grouped by name. Linux keeps the first 15 characters of a thread's name.
/// </summary>
public static class ProcessCpu
{
    /// <summary>sysconf(_SC_CLK_TCK), 100 on every Linux this runs on.</summary>
    public const double TicksPerSecond = 100;

    /// <summary>One /proc/PID/stat (or /proc/PID/task/TID/stat); null when that process or thread has ended.</summary>
    public static Stat? Read(string statPath)
    {
        string text;
        try
        {
            text = File.ReadAllText(statPath);
        }
        catch (IOException)
        {
            return null;
        }

        // Fields after the parenthesised name: state is field 3, ppid 4, utime 14, stime 15, cutime 16, cstime 17.
        var fields = text[(text.LastIndexOf(')') + 2)..].Split(' ');
        long Field(int number) => long.Parse(fields[number - 3], CultureInfo.InvariantCulture);
        return new Stat((int)Field(4), Field(14) + Field(15), Field(16) + Field(17));
    }

    /// <summary>This process's or <paramref name="pid"/>'s stat; null when it has ended.</summary>
    public static Stat? Read(int pid) => Read($"/proc/{pid}/stat");

    /// <summary>
    /// A PostgreSQL server's ticks: the postmaster's own, its ended children's (it reaps every backend and worker, so
    /// one that ended between two readings is not lost) and its live children's.
    /// </summary>
    public static long ServerTicks(int postmaster)
    {
        var root = Read(postmaster) ?? throw new InvalidOperationException($"PostgreSQL's postmaster {postmaster} is gone");
        var ticks = root.Own + root.Children;
        foreach (var dir in Directory.EnumerateDirectories("/proc"))
        {
            if (int.TryParse(Path.GetFileName(dir), out var pid) && Read(pid) is { } stat && stat.ParentId == postmaster)
            {
                ticks += stat.Own;
            }
        }

        return ticks;
    }

    /// <summary>Ticks of the live threads of <paramref name="pid"/> by name, trailing digits dropped ("rdk:broker12" is "rdk:broker").</summary>
    public static Dictionary<string, long> ByThreadName(int pid)
    {
        var groups = new Dictionary<string, long>(StringComparer.Ordinal);
        foreach (var task in Directory.EnumerateDirectories($"/proc/{pid}/task"))
        {
            string name;
            try
            {
                name = File.ReadAllText(Path.Combine(task, "comm")).TrimEnd('\n').TrimEnd("0123456789".ToCharArray()).TrimEnd('-', ' ', '#');
            }
            catch (IOException)
            {
                continue; // the thread ended between listing and reading
            }

            if (Read(Path.Combine(task, "stat")) is { } stat)
            {
                groups[name] = groups.GetValueOrDefault(name) + stat.Own;
            }
        }

        return groups;
    }

    /// <param name="ParentId">The parent's process id.</param>
    /// <param name="Own">utime + stime: every thread of the process, live or ended.</param>
    /// <param name="Children">cutime + cstime: the children it has waited for.</param>
    public sealed record Stat(int ParentId, long Own, long Children);
}
