using System.Reflection;
using System.Runtime.InteropServices;

namespace KafkaClicks.Broker;

/// <summary>
/// P/Invoke declarations for librdkafka's mock cluster (rdkafka_mock.h, an experimental API without ABI
/// guarantees; checked against the librdkafka shipped with Confluent.Kafka 2.16.0).
/// </summary>
internal static partial class LibrdkafkaMockNative
{
    private const string Lib = "librdkafka";

    // rd_kafka_type_t
    internal const int RdKafkaProducer = 0;

    // rd_kafka_conf_res_t
    internal const int RdKafkaConfOk = 0;

    // rd_kafka_resp_err_t values used here.
    internal const int RespErrNoError = 0;
    internal const int RespErrTopicAlreadyExists = 36;

    static LibrdkafkaMockNative()
    {
        // Make Confluent.Kafka load its native copy first (it falls back from librdkafka.so, which needs
        // libsasl2.so.3 that Debian 12 lacks, to centos8-librdkafka.so). Our resolver then tries the same
        // names in the same order; dlopen of an already loaded file returns the same handle, so both
        // bind one copy of the library (and one mock cluster registry).
        Confluent.Kafka.Library.Load();
        NativeLibrary.SetDllImportResolver(typeof(LibrdkafkaMockNative).Assembly, Resolve);
    }

    /// <summary>Forces the static constructor (library load + resolver registration).</summary>
    internal static void EnsureInitialized()
    {
    }

    private static IntPtr Resolve(string libraryName, Assembly assembly, DllImportSearchPath? searchPath)
    {
        if (libraryName != Lib)
        {
            return IntPtr.Zero;
        }

        foreach (var candidate in new[] { "librdkafka", "centos8-librdkafka" })
        {
            if (NativeLibrary.TryLoad(candidate, assembly, searchPath, out var handle))
            {
                return handle;
            }
        }

        return IntPtr.Zero;
    }

    [LibraryImport(Lib)]
    internal static partial IntPtr rd_kafka_conf_new();

    [LibraryImport(Lib)]
    internal static partial void rd_kafka_conf_destroy(IntPtr conf);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_conf_set(IntPtr conf, string name, string value, byte[] errstr, UIntPtr errstrSize);

    [LibraryImport(Lib)]
    internal static partial IntPtr rd_kafka_new(int type, IntPtr conf, byte[] errstr, UIntPtr errstrSize);

    [LibraryImport(Lib)]
    internal static partial void rd_kafka_destroy(IntPtr rk);

    [LibraryImport(Lib)]
    internal static partial IntPtr rd_kafka_mock_cluster_new(IntPtr rk, int brokerCount);

    [LibraryImport(Lib)]
    internal static partial void rd_kafka_mock_cluster_destroy(IntPtr mcluster);

    [LibraryImport(Lib)]
    internal static partial IntPtr rd_kafka_mock_cluster_bootstraps(IntPtr mcluster);

    [LibraryImport(Lib)]
    internal static partial void rd_kafka_mock_set_controller_id(IntPtr mcluster, int controllerId);

    [LibraryImport(Lib)]
    internal static partial void rd_kafka_mock_group_initial_rebalance_delay_ms(IntPtr mcluster, int delayMs);

    [LibraryImport(Lib)]
    internal static partial int rd_kafka_mock_broker_set_down(IntPtr mcluster, int brokerId);

    [LibraryImport(Lib)]
    internal static partial int rd_kafka_mock_broker_set_up(IntPtr mcluster, int brokerId);

    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial int rd_kafka_mock_topic_create(IntPtr mcluster, string topic, int partitionCount, int replicationFactor);

    /// <summary>Changes only the host/port the broker advertises in Metadata; the listener keeps its port.</summary>
    [LibraryImport(Lib, StringMarshalling = StringMarshalling.Utf8)]
    internal static partial void rd_kafka_mock_broker_set_host_port(IntPtr mcluster, int brokerId, string host, int port);

    [LibraryImport(Lib)]
    internal static partial void rd_kafka_mock_push_request_errors_array(IntPtr mcluster, short apiKey, UIntPtr count, int[] errors);

    [LibraryImport(Lib)]
    internal static partial IntPtr rd_kafka_err2str(int err);

    internal static string ErrorText(int err) =>
        Marshal.PtrToStringUTF8(rd_kafka_err2str(err)) ?? $"error {err}";

    internal static string ErrBuf(byte[] buf)
    {
        var len = Array.IndexOf(buf, (byte)0);
        return System.Text.Encoding.UTF8.GetString(buf, 0, len < 0 ? buf.Length : len);
    }
}
