"""Alembic environment of the backend database (see kinitro.core.migrations)."""

from kinitro.backend.db.models import Base
from kinitro.core.migrations import run_env

run_env(Base.metadata)
