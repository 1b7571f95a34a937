namespace KafkaClicks.Ingest;

internal static class TimerExtensions
{
    /// <summary>
    /// Stops the timer and waits, up to <paramref name="limit"/>, for a callback it is running to end: what the callback
    /// uses can then be disposed after it.
    /// </summary>
    public static void DisposeAndWait(this Timer timer, TimeSpan limit)
    {
        using var stopped = new ManualResetEvent(false);
        if (timer.Dispose(stopped))
        {
            stopped.WaitOne(limit);
        }
    }
}
