using System.Collections.Frozen;
using Confluent.Kafka;
using KafkaClicks.ServiceDefaults;
using Microsoft.Extensions.Logging;
using Streamiz.Kafka.Net;
using Streamiz.Kafka.Net.Kafka;
using Streamiz.Kafka.Net.Metrics;

namespace KafkaClicks.Aggregator;

/// <summary>
/// Streamiz' default Kafka clients, made safe for the rebalances where Streamiz 1.8 stops counting for good. Streamiz
/// sets a "rebalance in progress" flag around its rebalance handlers and clears it only when they succeed; while it is
/// set the stream thread sleeps instead of polling, so it never rejoins the group, never gets partitions again, and its
/// state still says RUNNING.
/// <list type="bullet">
/// <item>Evicted from the group (a broker outage longer than the session timeout): Confluent reports the lost partitions
/// as revoked unless a partitions-lost handler is set, and Streamiz builds its consumers without one; its commit of the
/// revoked tasks then fails. With the handler, Streamiz' own lost path closes the tasks without committing (their offsets
/// are no longer this member's to commit) and the thread rejoins.</item>
/// <item>A commit of revoked partitions the group refuses because the rebalance moved on (another instance joined or
/// died): it is skipped, at-least-once, and the revocation completes, closing the tasks and their stores cleanly. The
/// partitions' next owner reads the uncommitted clicks again and its impression store drops those already counted.</item>
/// <item>Any other failure of a revocation (under exactly-once, the transaction's commit): Streamiz' lost path runs, which
/// clears the flag, and the failure reaches the stream thread, which rejoins the group; should the stream end in ERROR,
/// <see cref="AggregatorService"/> replaces it.</item>
/// <item>Under exactly-once, a transaction the broker requires to be aborted (its offsets refused because the group
/// moved on during a broker stall: "group generation id is not valid"): Streamiz counts only a fenced producer as
/// recoverable and lets every other error kill the stream thread without closing its tasks, whose RocksDB stores then
/// stay locked in the process. Reported to Streamiz as fenced, it aborts the transaction (its outputs are never read),
/// closes the tasks and rejoins the group, which reprocesses from the last committed offsets.</item>
/// </list>
/// </summary>
internal sealed partial class RebalanceSafeClientSupplier : IKafkaSupplier
{
    /// <summary>
    /// What Streamiz decides for its clients (their identity, the group, how offsets are committed and which records are
    /// read), which no Kafka:Client, Kafka:Consumer or Kafka:Producer setting overrides.
    /// </summary>
    private static readonly FrozenSet<string> StreamizDecides = FrozenSet.Create(StringComparer.Ordinal,
        "bootstrap.servers", "client.id", "group.id", "transactional.id", "enable.auto.commit", "enable.auto.offset.store", "isolation.level");

    private readonly ConsumerBuilders _builders = new();
    private readonly DefaultKafkaClientSupplier _inner;
    private readonly KafkaClientFactory _kafka;
    private readonly ILogger _logger;

    /// <param name="kafka">Every Kafka:Client setting (security, SASL, TLS), and Kafka:Consumer's or Kafka:Producer's, is put
    /// over the configs Streamiz builds, which carry only the properties its own config class knows.</param>
    public RebalanceSafeClientSupplier(IStreamConfig config, KafkaClientFactory kafka, ILogger logger)
    {
        _inner = new DefaultKafkaClientSupplier(new KafkaLoggerAdapter(config), config, _builders);
        _kafka = kafka;
        _logger = logger;
    }

    public StreamMetricsRegistry MetricsRegistry
    {
        get => _inner.MetricsRegistry;
        set => _inner.MetricsRegistry = value;
    }

    public IConsumer<byte[], byte[]> GetConsumer(ConsumerConfig config, IConsumerRebalanceListener rebalanceListener)
    {
        _kafka.Overlay(config, "Consumer", StreamizDecides);

        // The default supplier asks its builder factory for the builder without passing the listener on: hand it over.
        lock (_builders)
        {
            _builders.Listener = rebalanceListener;
            try
            {
                var revocation = new Revocation();
                var consumer = _inner.GetConsumer(config, new RevocationGuard(rebalanceListener, revocation));
                return new RevocationTolerantConsumer(consumer, revocation, _logger);
            }
            finally
            {
                _builders.Listener = null;
            }
        }
    }

    public IProducer<byte[], byte[]> GetProducer(ProducerConfig config)
    {
        _kafka.Overlay(config, "Producer", StreamizDecides);
        return new AbortableAsFencedProducer(_inner.GetProducer(config));
    }

    public IConsumer<byte[], byte[]> GetRestoreConsumer(ConsumerConfig config)
    {
        _kafka.Overlay(config, "Consumer", StreamizDecides);
        return _inner.GetRestoreConsumer(config);
    }

    public IAdminClient GetAdmin(AdminClientConfig config)
    {
        _kafka.Overlay(config, null, StreamizDecides);
        return _inner.GetAdmin(config);
    }

    public IConsumer<byte[], byte[]> GetGlobalConsumer(ConsumerConfig config)
    {
        _kafka.Overlay(config, "Consumer", StreamizDecides);
        return _inner.GetGlobalConsumer(config);
    }

    [LoggerMessage(EventId = 3004, Level = LogLevel.Warning,
        Message = "Offsets of revoked partitions not committed ({Error}): their next owner reads those clicks again and drops the ones already counted")]
    private static partial void LogRevokedCommitSkipped(ILogger logger, string error);

    /// <summary>Whether one consumer's revocation handler is running (rebalance handlers run on the thread that polls).</summary>
    private sealed class Revocation
    {
        public volatile bool InProgress;
    }

    private sealed class RevocationGuard(IConsumerRebalanceListener inner, Revocation revocation) : IConsumerRebalanceListener
    {
        public void PartitionsAssigned(IConsumer<byte[], byte[]> consumer, List<TopicPartition> partitions) =>
            inner.PartitionsAssigned(consumer, partitions);

        public void PartitionsRevoked(IConsumer<byte[], byte[]> consumer, List<TopicPartitionOffset> partitions)
        {
            revocation.InProgress = true;
            try
            {
                inner.PartitionsRevoked(consumer, partitions);
            }
            catch (Exception)
            {
                inner.PartitionsLost(consumer, partitions);
                throw;
            }
            finally
            {
                revocation.InProgress = false;
            }
        }

        public void PartitionsLost(IConsumer<byte[], byte[]> consumer, List<TopicPartitionOffset> partitions) =>
            inner.PartitionsLost(consumer, partitions);
    }

    /// <summary>The stream consumer, with commits of revoked partitions that the group refuses skipped.</summary>
    private sealed class RevocationTolerantConsumer(IConsumer<byte[], byte[]> inner, Revocation revocation, ILogger logger) : IConsumer<byte[], byte[]>
    {
        public string MemberId => inner.MemberId;

        public List<TopicPartition> Assignment => inner.Assignment;

        public List<string> Subscription => inner.Subscription;

        public IConsumerGroupMetadata ConsumerGroupMetadata => inner.ConsumerGroupMetadata;

        public Handle Handle => inner.Handle;

        public string Name => inner.Name;

        public void Commit(IEnumerable<TopicPartitionOffset> offsets)
        {
            try
            {
                inner.Commit(offsets);
            }
            catch (KafkaException e) when (revocation.InProgress
                && e.Error.Code is ErrorCode.RebalanceInProgress or ErrorCode.IllegalGeneration or ErrorCode.UnknownMemberId)
            {
                LogRevokedCommitSkipped(logger, e.Error.Reason);
            }
        }

        public List<TopicPartitionOffset> Commit() => inner.Commit();

        public void Commit(ConsumeResult<byte[], byte[]> result) => inner.Commit(result);

        public ConsumeResult<byte[], byte[]> Consume(int millisecondsTimeout) => inner.Consume(millisecondsTimeout);

        public ConsumeResult<byte[], byte[]> Consume(CancellationToken cancellationToken = default) => inner.Consume(cancellationToken);

        public ConsumeResult<byte[], byte[]> Consume(TimeSpan timeout) => inner.Consume(timeout);

        public void Subscribe(IEnumerable<string> topics) => inner.Subscribe(topics);

        public void Subscribe(string topic) => inner.Subscribe(topic);

        public void Unsubscribe() => inner.Unsubscribe();

        public void Assign(TopicPartition partition) => inner.Assign(partition);

        public void Assign(TopicPartitionOffset partition) => inner.Assign(partition);

        public void Assign(IEnumerable<TopicPartitionOffset> partitions) => inner.Assign(partitions);

        public void Assign(IEnumerable<TopicPartition> partitions) => inner.Assign(partitions);

        public void IncrementalAssign(IEnumerable<TopicPartitionOffset> partitions) => inner.IncrementalAssign(partitions);

        public void IncrementalAssign(IEnumerable<TopicPartition> partitions) => inner.IncrementalAssign(partitions);

        public void IncrementalUnassign(IEnumerable<TopicPartition> partitions) => inner.IncrementalUnassign(partitions);

        public void Unassign() => inner.Unassign();

        public void StoreOffset(ConsumeResult<byte[], byte[]> result) => inner.StoreOffset(result);

        public void StoreOffset(TopicPartitionOffset offset) => inner.StoreOffset(offset);

        public void Seek(TopicPartitionOffset tpo) => inner.Seek(tpo);

        public void Pause(IEnumerable<TopicPartition> partitions) => inner.Pause(partitions);

        public void Resume(IEnumerable<TopicPartition> partitions) => inner.Resume(partitions);

        public List<TopicPartitionOffset> Committed(TimeSpan timeout) => inner.Committed(timeout);

        public List<TopicPartitionOffset> Committed(IEnumerable<TopicPartition> partitions, TimeSpan timeout) => inner.Committed(partitions, timeout);

        public Offset Position(TopicPartition partition) => inner.Position(partition);

        public List<TopicPartitionOffset> OffsetsForTimes(IEnumerable<TopicPartitionTimestamp> timestampsToSearch, TimeSpan timeout) =>
            inner.OffsetsForTimes(timestampsToSearch, timeout);

        public WatermarkOffsets GetWatermarkOffsets(TopicPartition topicPartition) => inner.GetWatermarkOffsets(topicPartition);

        public WatermarkOffsets QueryWatermarkOffsets(TopicPartition topicPartition, TimeSpan timeout) => inner.QueryWatermarkOffsets(topicPartition, timeout);

        public void Close() => inner.Close();

        public int AddBrokers(string brokers) => inner.AddBrokers(brokers);

        public void SetSaslCredentials(string username, string password) => inner.SetSaslCredentials(username, password);

        public void Dispose() => inner.Dispose();
    }

    /// <summary>The stream producer, with transactions the broker requires to be aborted reported as a fenced producer.</summary>
    private sealed class AbortableAsFencedProducer(IProducer<byte[], byte[]> inner) : IProducer<byte[], byte[]>
    {
        public Handle Handle => inner.Handle;

        public string Name => inner.Name;

        public void SendOffsetsToTransaction(IEnumerable<TopicPartitionOffset> offsets, IConsumerGroupMetadata groupMetadata, TimeSpan timeout) =>
            AbortableAsFenced(() => inner.SendOffsetsToTransaction(offsets, groupMetadata, timeout));

        public void CommitTransaction(TimeSpan timeout) => AbortableAsFenced(() => inner.CommitTransaction(timeout));

        public void CommitTransaction() => AbortableAsFenced(inner.CommitTransaction);

        public Task<DeliveryResult<byte[], byte[]>> ProduceAsync(string topic, Message<byte[], byte[]> message, CancellationToken cancellationToken = default) =>
            inner.ProduceAsync(topic, message, cancellationToken);

        public Task<DeliveryResult<byte[], byte[]>> ProduceAsync(TopicPartition topicPartition, Message<byte[], byte[]> message,
            CancellationToken cancellationToken = default) => inner.ProduceAsync(topicPartition, message, cancellationToken);

        public void Produce(string topic, Message<byte[], byte[]> message, Action<DeliveryReport<byte[], byte[]>>? deliveryHandler = null) =>
            inner.Produce(topic, message, deliveryHandler);

        public void Produce(TopicPartition topicPartition, Message<byte[], byte[]> message, Action<DeliveryReport<byte[], byte[]>>? deliveryHandler = null) =>
            inner.Produce(topicPartition, message, deliveryHandler);

        public int Poll(TimeSpan timeout) => inner.Poll(timeout);

        public int Flush(TimeSpan timeout) => inner.Flush(timeout);

        public void Flush(CancellationToken cancellationToken = default) => inner.Flush(cancellationToken);

        public void InitTransactions(TimeSpan timeout) => inner.InitTransactions(timeout);

        public void BeginTransaction() => inner.BeginTransaction();

        public void AbortTransaction(TimeSpan timeout) => inner.AbortTransaction(timeout);

        public void AbortTransaction() => inner.AbortTransaction();

        public int AddBrokers(string brokers) => inner.AddBrokers(brokers);

        public void SetSaslCredentials(string username, string password) => inner.SetSaslCredentials(username, password);

        public void Dispose() => inner.Dispose();

        private static void AbortableAsFenced(Action commit)
        {
            try
            {
                commit();
            }
            catch (KafkaTxnRequiresAbortException e)
            {
                throw new KafkaException(new Error(ErrorCode.ProducerFenced,
                    $"the transaction must be aborted ({e.Error.Reason}); reported as fenced so the tasks are closed and the group rejoined"), e);
            }
        }
    }

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
