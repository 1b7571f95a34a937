using System.Net;
using System.Net.Sockets;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Loopback ports for the servers tests start themselves (brokers, Redis, PostgreSQL, Prometheus, hosts).</summary>
public static class FreePorts
{
    /// <summary>A port the OS reports free right now.</summary>
    public static int Next()
    {
        using var listener = new TcpListener(IPAddress.Loopback, 0);
        listener.Start();
        return ((IPEndPoint)listener.LocalEndpoint).Port;
    }
}
