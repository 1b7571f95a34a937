namespace KafkaClicks.Migrations;

/// <summary>Which storage engine the migrations laid out: the same tables and names, different mechanics.</summary>
public enum StorageFlavor
{
    /// <summary>Plain PostgreSQL: day-partitioned minute table, rollup tables refreshed by a job.</summary>
    Plain,

    /// <summary>TimescaleDB: hypertable and hierarchical continuous aggregates with policies.</summary>
    Timescale,
}
