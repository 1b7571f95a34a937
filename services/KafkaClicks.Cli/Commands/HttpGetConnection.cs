using System.Buffers.Text;
using System.Net.Security;
using System.Net.Sockets;
using System.Text;

namespace KafkaClicks.Cli.Commands;

/// <summary>
/// One HTTP/1.1 keep-alive connection that sends GETs one at a time and returns each answer's status code, reading and
/// discarding the body (Content-Length, chunked, or to the end of the connection). All it does is what a load generator
/// needs: no redirects followed, no cookies, no pooling; a connection the server closes, or any failure, makes it
/// unusable (<see cref="FailedException"/>), and the caller opens another.
/// </summary>
public sealed class HttpGetConnection : IDisposable
{
    private const int MaxHeaderBytes = 16 * 1024;
    private readonly Socket _socket;
    private readonly Stream _stream;
    private static readonly byte[] Get = "GET "u8.ToArray();
    private readonly byte[] _suffix;
    private readonly TimeSpan _timeout;
    private readonly CancellationTokenSource _deadline = new();
    private byte[] _send = new byte[1024];
    private readonly byte[] _receive = new byte[MaxHeaderBytes];
    private int _start;
    private int _end;
    private bool _closed;

    private HttpGetConnection(Socket socket, Stream stream, Uri url, TimeSpan timeout)
    {
        _socket = socket;
        _stream = stream;
        _timeout = timeout;
        _suffix = Encoding.ASCII.GetBytes($" HTTP/1.1\r\nHost: {url.Authority}\r\nUser-Agent: kafkaclicks-loadgen\r\n\r\n");
    }

    /// <summary>False once the server closed the connection after an answer, or a request on it failed.</summary>
    public bool IsOpen => !_closed;

    /// <summary>The server or the network failed the request: refused, reset, closed early, too slow, or not HTTP/1.1.</summary>
    public sealed class FailedException(string message, Exception? inner = null) : Exception(message, inner);

    /// <summary>Connects to <paramref name="url"/>'s host and port (TLS for https) within <paramref name="timeout"/>.</summary>
    public static async Task<HttpGetConnection> OpenAsync(Uri url, TimeSpan timeout, CancellationToken cancellationToken)
    {
        var socket = new Socket(SocketType.Stream, ProtocolType.Tcp) { NoDelay = true };
        using var deadline = CancellationTokenSource.CreateLinkedTokenSource(cancellationToken);
        deadline.CancelAfter(timeout);
        try
        {
            await socket.ConnectAsync(url.DnsSafeHost, url.Port, deadline.Token);
            Stream stream = new NetworkStream(socket, ownsSocket: false);
            if (url.Scheme == Uri.UriSchemeHttps)
            {
                var tls = new SslStream(stream, leaveInnerStreamOpen: false);
                await tls.AuthenticateAsClientAsync(new SslClientAuthenticationOptions { TargetHost = url.DnsSafeHost }, deadline.Token);
                stream = tls;
            }

            return new HttpGetConnection(socket, stream, url, timeout);
        }
        catch (Exception e) when (!cancellationToken.IsCancellationRequested)
        {
            socket.Dispose();
            throw new FailedException($"cannot connect to {url.Authority}: {e.Message}", e);
        }
        catch
        {
            socket.Dispose();
            throw;
        }
    }

    /// <summary>
    /// Sends <c>GET <paramref name="pathAndQuery"/></c> and returns the answer's status code once its whole body has
    /// been read. Throws <see cref="FailedException"/> when no complete answer arrives within the connection's timeout
    /// or the connection fails; the connection is then unusable.
    /// </summary>
    public async Task<int> GetAsync(string pathAndQuery, CancellationToken cancellationToken)
    {
        if (_closed)
        {
            throw new FailedException("the connection is closed");
        }

        if (!_deadline.TryReset())
        {
            throw new FailedException("the connection timed out before");
        }

        using var linked = cancellationToken.CanBeCanceled
            ? CancellationTokenSource.CreateLinkedTokenSource(cancellationToken, _deadline.Token)
            : null;
        var token = linked?.Token ?? _deadline.Token;
        _deadline.CancelAfter(_timeout);
        try
        {
            await _stream.WriteAsync(Request(pathAndQuery), token);
            var status = await ReadAnswerAsync(token);

            // Disarmed until the next request: an idle keep-alive connection has no deadline.
            _deadline.TryReset();
            return status;
        }
        catch (Exception e) when (e is not FailedException && !cancellationToken.IsCancellationRequested)
        {
            _closed = true;
            throw new FailedException(_deadline.IsCancellationRequested ? $"no complete answer within {_timeout.TotalSeconds:0.#} s" : e.Message, e);
        }
        catch (FailedException)
        {
            _closed = true;
            throw;
        }
    }

    public void Dispose()
    {
        _closed = true;
        _stream.Dispose();
        _socket.Dispose();
        _deadline.Dispose();
    }

    private ReadOnlyMemory<byte> Request(string pathAndQuery)
    {
        var length = Get.Length + pathAndQuery.Length + _suffix.Length;
        if (_send.Length < length)
        {
            _send = new byte[length * 2];
        }

        Get.CopyTo(_send, 0);
        var written = Encoding.ASCII.GetBytes(pathAndQuery, 0, pathAndQuery.Length, _send, Get.Length);
        _suffix.CopyTo(_send, Get.Length + written);
        return _send.AsMemory(0, Get.Length + written + _suffix.Length);
    }

    private async Task<int> ReadAnswerAsync(CancellationToken token)
    {
        // Status line and headers, up to the blank line.
        int headerEnd;
        while ((headerEnd = _receive.AsSpan(_start, _end - _start).IndexOf("\r\n\r\n"u8)) < 0)
        {
            await FillAsync(token);
        }

        var head = _receive.AsSpan(_start, headerEnd);
        _start += headerEnd + 4;
        var status = ParseStatus(head);
        long? contentLength = null;
        var chunked = false;
        var closes = head.StartsWith("HTTP/1.0"u8);
        foreach (var range in head.Split("\r\n"u8))
        {
            var line = head[range];
            var colon = line.IndexOf((byte)':');
            if (colon <= 0)
            {
                continue;
            }

            var name = line[..colon];
            var value = line[(colon + 1)..].Trim((byte)' ');
            if (Ascii.EqualsIgnoreCase(name, "Content-Length"u8))
            {
                contentLength = Utf8Parser.TryParse(value, out long parsed, out var used) && used == value.Length && parsed >= 0
                    ? parsed
                    : throw new FailedException("the answer's Content-Length is not a number");
            }
            else if (Ascii.EqualsIgnoreCase(name, "Transfer-Encoding"u8))
            {
                chunked = value.IndexOf("chunked"u8) >= 0;
            }
            else if (Ascii.EqualsIgnoreCase(name, "Connection"u8))
            {
                closes = Ascii.EqualsIgnoreCase(value, "close"u8) || (closes && !Ascii.EqualsIgnoreCase(value, "keep-alive"u8));
            }
        }

        if (status is (>= 100 and < 200) or 204 or 304)
        {
            // No body.
        }
        else if (chunked)
        {
            await SkipChunkedAsync(token);
        }
        else if (contentLength is { } length)
        {
            await SkipAsync(length, token);
        }
        else
        {
            // No length: the body runs to the end of the connection.
            while (await FillOrEndAsync(token))
            {
                _start = _end;
            }

            closes = true;
        }

        _closed = closes;
        return status;
    }

    private static int ParseStatus(ReadOnlySpan<byte> head)
    {
        // "HTTP/1.1 302 Found"
        if (!head.StartsWith("HTTP/1."u8) || head.Length < 12 || head[8] != (byte)' '
            || !Utf8Parser.TryParse(head.Slice(9, 3), out int status, out var used) || used != 3)
        {
            throw new FailedException("the answer is not HTTP/1.x");
        }

        return status;
    }

    private async Task SkipChunkedAsync(CancellationToken token)
    {
        while (true)
        {
            int lineEnd;
            while ((lineEnd = _receive.AsSpan(_start, _end - _start).IndexOf("\r\n"u8)) < 0)
            {
                await FillAsync(token);
            }

            var sizeText = _receive.AsSpan(_start, lineEnd);
            var extension = sizeText.IndexOf((byte)';');
            if (extension >= 0)
            {
                sizeText = sizeText[..extension];
            }

            if (!Utf8Parser.TryParse(sizeText.Trim((byte)' '), out long size, out var used, 'x') || used != sizeText.Trim((byte)' ').Length)
            {
                throw new FailedException("the answer's chunk size is not hexadecimal");
            }

            _start += lineEnd + 2;
            if (size == 0)
            {
                // Trailers, if any, end with a blank line.
                while (true)
                {
                    while ((lineEnd = _receive.AsSpan(_start, _end - _start).IndexOf("\r\n"u8)) < 0)
                    {
                        await FillAsync(token);
                    }

                    _start += lineEnd + 2;
                    if (lineEnd == 0)
                    {
                        return;
                    }
                }
            }

            await SkipAsync(size + 2, token);
        }
    }

    private async Task SkipAsync(long bytes, CancellationToken token)
    {
        while (bytes > 0)
        {
            if (_start == _end)
            {
                await FillAsync(token);
            }

            var taken = (int)Math.Min(bytes, _end - _start);
            _start += taken;
            bytes -= taken;
        }
    }

    private async Task FillAsync(CancellationToken token)
    {
        if (!await FillOrEndAsync(token))
        {
            throw new FailedException("the server closed the connection before its answer was complete");
        }
    }

    /// <summary>Reads more bytes after those not yet consumed; false at the end of the connection.</summary>
    private async Task<bool> FillOrEndAsync(CancellationToken token)
    {
        if (_start == _end)
        {
            _start = _end = 0;
        }
        else if (_end == _receive.Length)
        {
            if (_start == 0)
            {
                throw new FailedException($"the answer's headers are longer than {MaxHeaderBytes} bytes");
            }

            _receive.AsSpan(_start, _end - _start).CopyTo(_receive);
            _end -= _start;
            _start = 0;
        }

        var read = await _stream.ReadAsync(_receive.AsMemory(_end), token);
        _end += read;
        return read > 0;
    }
}
