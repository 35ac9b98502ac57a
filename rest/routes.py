"""Every HTTP route, as a list."""

from __future__ import annotations

from starlette.routing import Route

from . import analytics, exercises, health, openapi, rooms, workouts

routes = [
    Route("/healthz", health.healthz, methods=["GET"]),
    Route("/readyz", health.readyz, methods=["GET"]),
    Route("/metrics", health.metrics, methods=["GET"]),
    Route("/openapi.json", openapi.openapi, methods=["GET"]),
    Route("/api/v1/workouts", workouts.list_workouts, methods=["GET"]),
    Route("/api/v1/workouts/active", workouts.active_workout, methods=["GET"]),
    Route("/api/v1/workouts/{workout_id}", workouts.get_workout, methods=["GET"]),
    Route("/api/v1/workouts/{workout_id}", workouts.delete_workout, methods=["DELETE"]),
    Route("/api/v1/exercises/{exercise_id}/records", exercises.records, methods=["GET"]),
    Route("/api/v1/exercises/{exercise_id}/history", exercises.history, methods=["GET"]),
    Route("/api/v1/analytics/volume", analytics.volume, methods=["GET"]),
    Route("/api/v1/rooms", rooms.list_rooms, methods=["GET"]),
    Route("/api/v1/rooms/{room_id}", rooms.get_room, methods=["GET"]),
]
