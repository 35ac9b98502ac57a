-- Completed workouts, their sets in order, and each user's standing personal records.
-- Users are not a table: a user is the `sub` of a verified token. Workout and set
-- ids are made by clients, so they are unique per user, not across users: every
-- key starts with user_id, and one user's ids can never collide with another's.

CREATE TABLE workouts (
    user_id         text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
    id              uuid NOT NULL,
    name            text CHECK (length(name) <= 200),
    notes           text CHECK (length(notes) <= 2000),
    room_id         uuid,
    started_at      timestamptz NOT NULL,
    completed_at    timestamptz NOT NULL CHECK (completed_at >= started_at),
    duration_s      integer NOT NULL CHECK (duration_s >= 0),
    total_volume_kg double precision NOT NULL CHECK (total_volume_kg >= 0),
    set_count       integer NOT NULL CHECK (set_count >= 0),
    exercise_count  integer NOT NULL CHECK (exercise_count >= 0),
    plan            jsonb,
    PRIMARY KEY (user_id, id)
);
-- History, newest first, keyset-paginated on (completed_at, id).
CREATE INDEX workouts_user_completed ON workouts (user_id, completed_at DESC, id DESC);

CREATE TABLE workout_sets (
    user_id      text NOT NULL,
    workout_id   uuid NOT NULL,
    id           uuid NOT NULL,
    position     integer NOT NULL CHECK (position >= 0),
    exercise_id  text NOT NULL CHECK (length(exercise_id) BETWEEN 1 AND 64),
    set_type     text NOT NULL DEFAULT 'normal' CHECK (set_type IN ('normal', 'warmup', 'drop', 'failure')),
    weight_kg    double precision CHECK (weight_kg BETWEEN 0 AND 2000),
    reps         integer CHECK (reps BETWEEN 0 AND 10000),
    duration_s   double precision CHECK (duration_s BETWEEN 0 AND 86400),
    distance_m   double precision CHECK (distance_m BETWEEN 0 AND 10000000),
    rpe          numeric(3, 1) CHECK (rpe BETWEEN 1 AND 10 AND rpe * 2 = trunc(rpe * 2)),
    notes        text CHECK (length(notes) <= 2000),
    completed_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, workout_id, id),
    FOREIGN KEY (user_id, workout_id) REFERENCES workouts (user_id, id) ON DELETE CASCADE
);
-- One exercise's sets over time.
CREATE INDEX workout_sets_history ON workout_sets (user_id, exercise_id, completed_at DESC, id DESC);

-- The current best per user x exercise x record type. For max_reps the record is
-- per weight, so `weight_kg` is part of the key; for the other types it is 0.
CREATE TABLE personal_records (
    user_id     text NOT NULL,
    exercise_id text NOT NULL,
    type        text NOT NULL CHECK (type IN ('max_weight', 'max_reps', 'est_1rm', 'max_volume')),
    weight_kg   double precision NOT NULL DEFAULT 0,
    value       double precision NOT NULL,
    workout_id  uuid NOT NULL,
    set_id      uuid NOT NULL,
    achieved_at timestamptz NOT NULL,
    PRIMARY KEY (user_id, exercise_id, type, weight_kg),
    FOREIGN KEY (user_id, workout_id, set_id) REFERENCES workout_sets (user_id, workout_id, id) ON DELETE CASCADE
);
