-- completeThrough from the aggregator's progress markers. Each aggregator task (one per clicks.raw partition) sends a
-- marker to every clicks.minute partition behind the finals it covers; the sink keeps the latest one per (task,
-- partition) in the transaction that stores what came before it. completeThrough is the least final_through over every
-- (task, partition) pair of the current layout (tasks x partitions rows, as the newest marker declares), and unknown
-- while any pair has not reported: a restoring, stalled or dead task holds it back.
-- The watermark of version 004 (the greatest final per clicks.minute partition, whatever task sent it) overstated
-- completeness and is dropped: completeThrough is unknown until the first markers of an upgraded aggregator arrive.
DROP TABLE IF EXISTS stream_progress;
CREATE TABLE stream_progress (
    topic         text        NOT NULL,
    task          integer     NOT NULL,
    partition     integer     NOT NULL,
    tasks         integer     NOT NULL,
    partitions    integer     NOT NULL,
    final_through timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, task, partition)
);
