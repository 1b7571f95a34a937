using System.Reflection;
using Streamiz.Kafka.Net.Processors.Public;

namespace KafkaClicks.Topology;

/// <summary>
/// Whether the Streamiz task a processor runs in has restored its state stores (task state RUNNING). Streamiz runs the
/// punctuations of tasks still restoring, and its stream state says RUNNING while a thread restores a task it took
/// over, so only the task's own state tells. Streamiz 1.8 offers no public way to read it: this reads
/// <c>ProcessorContext&lt;K, V&gt;</c>'s wrapped context, its internal <c>Task</c> and the task's <c>State</c> by reflection,
/// and answers null when any of them is not where 1.8 has it (a unit test pins that it is).
/// </summary>
internal static class StreamTaskState
{
    private const BindingFlags Internal = BindingFlags.Instance | BindingFlags.NonPublic;

    private static readonly PropertyInfo? TaskProperty = typeof(Streamiz.Kafka.Net.ProcessorContext).GetProperty("Task", Internal);

    /// <summary>True when the task is RUNNING (restored), false while it is not, null when Streamiz does not say.</summary>
    public static bool? IsRunning<TKey, TValue>(ProcessorContext<TKey, TValue> context)
    {
        var inner = Wrapped<TKey, TValue>.Field?.GetValue(context) as Streamiz.Kafka.Net.ProcessorContext;
        var task = inner is null ? null : TaskProperty?.GetValue(inner);
        var state = task?.GetType().GetProperty("State", BindingFlags.Instance | BindingFlags.Public)?.GetValue(task);
        return state is null ? null : state.ToString() == "RUNNING";
    }

    private static class Wrapped<TKey, TValue>
    {
        public static readonly FieldInfo? Field = typeof(ProcessorContext<TKey, TValue>).GetField("context", Internal);
    }
}
