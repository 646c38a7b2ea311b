"""Alembic environment of the validator database (run by ``kinitro db upgrade --role validator``)."""

from kinitro.core.migrations import run_env
from kinitro.jobqueue.models import Base, include_object

run_env(Base.metadata, include_object=include_object)
