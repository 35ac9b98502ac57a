-- Group workout rooms and who belongs to them. Who is in a room *now* (presence)
-- lives in Redis; membership lives here.

CREATE TABLE rooms (
    id          uuid PRIMARY KEY,
    name        text NOT NULL CHECK (length(name) BETWEEN 1 AND 100),
    owner_id    text NOT NULL CHECK (length(owner_id) BETWEEN 1 AND 128),
    invite_code text NOT NULL UNIQUE,
    max_members integer NOT NULL CHECK (max_members BETWEEN 2 AND 1000),
    created_at  timestamptz NOT NULL DEFAULT now()
);

CREATE TABLE room_members (
    room_id   uuid NOT NULL REFERENCES rooms (id) ON DELETE CASCADE,
    user_id   text NOT NULL CHECK (length(user_id) BETWEEN 1 AND 128),
    joined_at timestamptz NOT NULL DEFAULT now(),
    PRIMARY KEY (room_id, user_id)
);
-- "My rooms".
CREATE INDEX room_members_user ON room_members (user_id, joined_at);

-- A workout started in a room points at it; the room may be deleted later.
ALTER TABLE workouts ADD CONSTRAINT workouts_room FOREIGN KEY (room_id) REFERENCES rooms (id) ON DELETE SET NULL;
