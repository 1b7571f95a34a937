using System.Net;
using System.Net.Sockets;

namespace KafkaClicks.IntegrationTests.Infrastructure;

/// <summary>Loopback ports for the servers tests start themselves (brokers, Redis, PostgreSQL, Prometheus, hosts).</summary>
public static class FreePorts
{
    // Below Linux's ephemeral range (32768-60999), from which every outgoing connection takes its local port: a server
    // stopped and started again on its port (an outage test) cannot find it taken by a client meanwhile, and lanes
    // running at once draw from 12,768 ports at random rather than from the kernel's next ephemeral one.
    private const int First = 20_000;
    private const int End = 32_768;

    /// <summary>A port below the ephemeral range that nothing listens on right now.</summary>
    public static int Next()
    {
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var port = Random.Shared.Next(First, End);
            try
            {
                using var listener = new TcpListener(IPAddress.Loopback, port);
                listener.Start();
                return port;
            }
            catch (SocketException)
            {
                // In use: draw again.
            }
        }

        throw new InvalidOperationException($"no free loopback port between {First} and {End} after 200 draws");
    }
}
