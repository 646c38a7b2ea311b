"""REST routes under ``/api/v1`` (public) and ``/api/v1/admin`` (API key with role admin)."""
