using Confluent.Kafka;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Kafka;
using Streamiz.Kafka.Net.Metrics;

namespace KafkaClicks.Aggregator;

/// <summary>
/// Streamiz' default Kafka clients, plus the partitions-lost handler its stream consumers are built without.
/// <para>
/// Without that handler, when the group evicts this instance (a broker outage longer than the session timeout),
/// Confluent reports the lost partitions as revoked. Streamiz then commits the tasks' offsets, which fails because the
/// member is no longer in the group, and the exception leaves its "rebalance in progress" flag set: the stream thread
/// sleeps from then on and never polls again, so it never gets partitions back, while its state still says RUNNING.
/// With the handler, Streamiz' own lost path closes the tasks without committing (their offsets are no longer this
/// member's to commit) and the thread rejoins the group.
/// </para>
/// </summary>
internal sealed class LostPartitionsClientSupplier : IKafkaSupplier
{
    private readonly ConsumerBuilders _builders = new();
    private readonly DefaultKafkaClientSupplier _inner;

    public LostPartitionsClientSupplier(IStreamConfig config)
    {
        _inner = new DefaultKafkaClientSupplier(new KafkaLoggerAdapter(config), config, _builders);
    }

    public StreamMetricsRegistry MetricsRegistry
    {
        get => _inner.MetricsRegistry;
        set => _inner.MetricsRegistry = value;
    }

    public IConsumer<byte[], byte[]> GetConsumer(ConsumerConfig config, IConsumerRebalanceListener rebalanceListener)
    {
        // The default supplier asks its builder factory for the builder without passing the listener on: hand it over.
        lock (_builders)
        {
            _builders.Listener = rebalanceListener;
            try
            {
                return _inner.GetConsumer(config, rebalanceListener);
            }
            finally
            {
                _builders.Listener = null;
            }
        }
    }

    public IProducer<byte[], byte[]> GetProducer(ProducerConfig config) => _inner.GetProducer(config);

    public IConsumer<byte[], byte[]> GetRestoreConsumer(ConsumerConfig config) => _inner.GetRestoreConsumer(config);

    public IAdminClient GetAdmin(AdminClientConfig config) => _inner.GetAdmin(config);

    public IConsumer<byte[], byte[]> GetGlobalConsumer(ConsumerConfig config) => _inner.GetGlobalConsumer(config);

    private sealed class ConsumerBuilders : DefaultKafkaClientBuilder
    {
        public IConsumerRebalanceListener? Listener { get; set; }

        public override ConsumerBuilder<byte[], byte[]> GetConsumerBuilder(ConsumerConfig config)
        {
            var builder = base.GetConsumerBuilder(config);
            if (Listener is { } listener)
            {
                builder.SetPartitionsLostHandler(listener.PartitionsLost);
            }

            return builder;
        }
    }
}
