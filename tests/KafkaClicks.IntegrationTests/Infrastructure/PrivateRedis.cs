using System.Diagnostics;
using System.Net;
using System.Net.Sockets;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>
/// A redis-server of one test, on a free port, that the test may stop and start again (the shared one must not
/// be stopped under other tests). Uses the same Debian redis-server that infra/dev.sh installs.
/// </summary>
public sealed class PrivateRedis : IAsyncDisposable
{
    private Process? _process;

    private PrivateRedis(int port) => Port = port;

    public int Port { get; }

    public string ConnectionString => $"127.0.0.1:{Port},abortConnect=false,connectTimeout=500,syncTimeout=500,asyncTimeout=500";

    public static async Task<PrivateRedis> StartAsync()
    {
        var redis = new PrivateRedis(FreePorts.Next());
        await redis.StartAgainAsync();
        return redis;
    }

    public async Task StartAgainAsync()
    {
        var start = new ProcessStartInfo("redis-server") { RedirectStandardOutput = true, RedirectStandardError = true };
        foreach (var arg in new[] { "--port", Port.ToString(System.Globalization.CultureInfo.InvariantCulture), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no" })
        {
            start.ArgumentList.Add(arg);
        }

        _process = Process.Start(start)!;
        for (var i = 0; i < 100; i++)
        {
            try
            {
                using var client = new TcpClient();
                await client.ConnectAsync(IPAddress.Loopback, Port);
                return;
            }
            catch (SocketException)
            {
                await Task.Delay(50);
            }
        }

        throw new InvalidOperationException($"redis-server did not start on port {Port}");
    }

    public async Task StopAsync()
    {
        if (_process is { HasExited: false } process)
        {
            process.Kill();
            await process.WaitForExitAsync();
        }
    }

    public async ValueTask DisposeAsync()
    {
        await StopAsync();
        _process?.Dispose();
    }
}
