// One browser and one product host at a time: the machine has two cores.
[assembly: CollectionBehavior(DisableTestParallelization = true)]
