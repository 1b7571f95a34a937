using System.Net;
using System.Net.Sockets;

namespace KafkaClicks.Broker;

/// <summary>Forwards 127.0.0.1:port to the mock broker's random listener port (byte pipe, both ways).</summary>
internal sealed class TcpForwarder : IDisposable
{
    private readonly TcpListener _listener;
    private readonly CancellationTokenSource _cts = new();
    private readonly Lock _gate = new();
    private readonly HashSet<Socket> _sockets = [];
    private Task? _acceptLoop;

    public TcpForwarder(int port)
    {
        _listener = new TcpListener(IPAddress.Loopback, port);
        _listener.Server.SetSocketOption(SocketOptionLevel.Socket, SocketOptionName.ReuseAddress, true);
        try
        {
            _listener.Start(512);
        }
        catch (SocketException ex)
        {
            throw new InvalidOperationException($"Cannot listen on 127.0.0.1:{port} for the embedded broker: {ex.Message}", ex);
        }

        Port = ((IPEndPoint)_listener.LocalEndpoint).Port;
    }

    public int Port { get; }

    public void Start(int targetPort) => _acceptLoop = Task.Run(() => AcceptLoop(targetPort));

    private async Task AcceptLoop(int targetPort)
    {
        while (!_cts.IsCancellationRequested)
        {
            Socket client;
            try
            {
                client = await _listener.AcceptSocketAsync(_cts.Token).ConfigureAwait(false);
            }
            catch (Exception) when (_cts.IsCancellationRequested)
            {
                return;
            }
            catch (SocketException)
            {
                continue;
            }

            _ = Task.Run(() => Pipe(client, targetPort));
        }
    }

    private async Task Pipe(Socket client, int targetPort)
    {
        var upstream = new Socket(AddressFamily.InterNetwork, SocketType.Stream, ProtocolType.Tcp);
        client.NoDelay = true;
        upstream.NoDelay = true;
        if (!Track(client) || !Track(upstream))
        {
            Close(client);
            Close(upstream);
            return;
        }

        try
        {
            await upstream.ConnectAsync(IPAddress.Loopback, targetPort, _cts.Token).ConfigureAwait(false);
            using var a = new NetworkStream(client, ownsSocket: false);
            using var b = new NetworkStream(upstream, ownsSocket: false);
            var t1 = a.CopyToAsync(b, 81920, _cts.Token);
            var t2 = b.CopyToAsync(a, 81920, _cts.Token);
            await Task.WhenAny(t1, t2).ConfigureAwait(false);
        }
        catch (Exception ex) when (ex is SocketException or IOException or OperationCanceledException or ObjectDisposedException)
        {
            // Connection closed by either side or forwarder stopped.
        }
        finally
        {
            Close(client);
            Close(upstream);
        }
    }

    private bool Track(Socket s)
    {
        lock (_gate)
        {
            if (_cts.IsCancellationRequested)
            {
                return false;
            }

            _sockets.Add(s);
            return true;
        }
    }

    private void Close(Socket s)
    {
        lock (_gate)
        {
            _sockets.Remove(s);
        }

        try
        {
            s.Shutdown(SocketShutdown.Both);
        }
        catch (Exception ex) when (ex is SocketException or ObjectDisposedException)
        {
            // already closed
        }

        s.Dispose();
    }

    public void Dispose()
    {
        Socket[] open;
        lock (_gate)
        {
            if (_cts.IsCancellationRequested)
            {
                return;
            }

            _cts.Cancel();
            open = [.. _sockets];
        }

        _listener.Stop();
        foreach (var s in open)
        {
            Close(s);
        }

        try
        {
            _acceptLoop?.Wait(TimeSpan.FromSeconds(5));
        }
        catch (AggregateException)
        {
            // accept loop ended with an error after cancellation
        }

        _cts.Dispose();
    }
}
