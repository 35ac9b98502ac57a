-- Volume over time reads a user's sets by time, whatever the exercise.
CREATE INDEX workout_sets_user_time ON workout_sets (user_id, completed_at);
