// Test hosts share the process-wide meters (one static Meter per component), and assertions read counters:
// test classes run one after another so no other host adds to them meanwhile.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
