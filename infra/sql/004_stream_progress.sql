-- Per partition of clicks.minute, the end of the latest window whose final count the sink committed.
-- The query API's completeThrough is the least of these over partitions that reported recently.
CREATE TABLE IF NOT EXISTS stream_progress (
    topic         text        NOT NULL,
    partition     integer     NOT NULL,
    final_through timestamptz NOT NULL,
    updated_at    timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (topic, partition)
);
