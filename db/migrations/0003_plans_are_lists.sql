-- A workout started from a one-exercise plan was stored with the plan as a JSON object
-- (the plan went in as a jsonb[] parameter, which took the list apart); a plan is a list.
UPDATE workouts SET plan = jsonb_build_array(plan) WHERE jsonb_typeof(plan) = 'object';
