using System.Runtime.InteropServices;

namespace KafkaClicks.Broker;

/// <summary>
/// Blocks every signal in the calling thread until disposed (Linux), so that the threads it starts meanwhile inherit a
/// mask that keeps signal handlers off them. librdkafka's mock cluster thread ends its poll loop for good when poll is
/// interrupted ("Mock cluster failed to poll N fds: -1: Interrupted system call"): every connection is then closed at
/// once and the embedded broker is gone while its process lives on. The .NET runtime handles SIGCHLD (a child process
/// exits), SIGCONT (a paused process resumes), SIGWINCH and others, and the kernel runs a handler on any thread that
/// does not block the signal, the mock's included. Blocked there, they go to the runtime's own threads; SIGSTOP and
/// SIGKILL cannot be blocked and still act on the whole process.
/// </summary>
internal sealed partial class SignalMask : IDisposable
{
    private const int SigBlock = 0;
    private const int SigSetMask = 2;
    private const int SigsetBytes = 128; // glibc's sigset_t

    private readonly byte[]? _previous;

    private SignalMask(byte[]? previous) => _previous = previous;

    /// <summary>Blocks every signal in this thread (nothing elsewhere than Linux); disposing restores the previous mask.</summary>
    public static SignalMask BlockAll()
    {
        if (!OperatingSystem.IsLinux())
        {
            return new SignalMask(null);
        }

        var all = new byte[SigsetBytes];
        var previous = new byte[SigsetBytes];
        if (sigfillset(all) != 0 || pthread_sigmask(SigBlock, all, previous) != 0)
        {
            throw new InvalidOperationException("pthread_sigmask failed: the embedded broker's threads would take the process's signals.");
        }

        return new SignalMask(previous);
    }

    public void Dispose()
    {
        if (_previous is not null)
        {
            _ = pthread_sigmask(SigSetMask, _previous, null);
        }
    }

    [LibraryImport("libc.so.6", SetLastError = true)]
    private static partial int sigfillset([Out] byte[] set);

    [LibraryImport("libc.so.6")]
    private static partial int pthread_sigmask(int how, byte[] set, [Out] byte[]? oldset);
}
