using Microsoft.Extensions.Logging;
using Microsoft.Extensions.Logging.Abstractions;

namespace KafkaClicks.Aggregator;

/// <summary>
/// Streamiz keeps one logger factory in a process-wide static and creates loggers from it in constructors,
/// before a new factory can be set. Handing it a host's factory would leave a disposed factory behind when that
/// host stops, and the next host in the process would fail on start. So Streamiz always gets this one
/// never-disposed factory, which forwards to whichever host's factory is current.
/// </summary>
internal sealed class StreamizLogging : ILoggerFactory
{
    public static readonly StreamizLogging Instance = new();
    private volatile ILoggerFactory _target = NullLoggerFactory.Instance;

    private StreamizLogging()
    {
    }

    public void Use(ILoggerFactory target) => _target = target;

    public void Release(ILoggerFactory target) => Interlocked.CompareExchange(ref _target, NullLoggerFactory.Instance, target);

    public ILogger CreateLogger(string categoryName) => new ForwardingLogger(this, categoryName);

    public void AddProvider(ILoggerProvider provider)
    {
    }

    public void Dispose()
    {
    }

    private sealed class ForwardingLogger(StreamizLogging owner, string category) : ILogger
    {
        private ILoggerFactory? _factory;
        private ILogger _logger = NullLogger.Instance;

        private ILogger Current
        {
            get
            {
                var target = owner._target;
                if (!ReferenceEquals(target, _factory))
                {
                    try
                    {
                        _logger = target.CreateLogger(category);
                    }
                    catch (ObjectDisposedException)
                    {
                        _logger = NullLogger.Instance;
                    }

                    _factory = target;
                }

                return _logger;
            }
        }

        public IDisposable? BeginScope<TState>(TState state)
            where TState : notnull => Current.BeginScope(state);

        public bool IsEnabled(LogLevel logLevel) => Current.IsEnabled(logLevel);

        public void Log<TState>(LogLevel logLevel, EventId eventId, TState state, Exception? exception, Func<TState, Exception?, string> formatter)
        {
            try
            {
                Current.Log(logLevel, eventId, state, exception, formatter);
            }
            catch (ObjectDisposedException)
            {
            }
        }
    }
}
