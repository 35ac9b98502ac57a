-- A workout deleted from the history keeps its id used up: a device that replays an offline
-- start of it later must be refused as for a stored one (workout:start reads both), or the
-- replay would become a live workout and be stored again.
CREATE TABLE deleted_workouts (
    user_id     text NOT NULL,
    id          uuid NOT NULL,
    deleted_at  timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (user_id, id)
);
