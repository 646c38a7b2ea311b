"""Hypothesis strategies derived from the wire models' own type annotations.

``model_strategy(Model)`` reads each field's annotation and constraints (patterns,
lengths, bounds, literals, enums, nested models, unions) so every new field is covered
automatically. Models whose validators tie fields together get a hand-written strategy
in ``OVERRIDES``; any other cross-field rule is handled by rejecting invalid draws.
"""

from __future__ import annotations

import enum
import types
from datetime import UTC, datetime, timedelta, timezone
from typing import Annotated, Any, Literal, Union, get_args, get_origin, get_type_hints

from hypothesis import reject
from hypothesis import strategies as st
from pydantic import AwareDatetime, BaseModel, JsonValue, ValidationError
from pydantic.fields import FieldInfo
from typing_extensions import is_typeddict

from kinitro.protocol.common import ArtifactRef, EvalMetrics, JobState, TaskMetrics
from kinitro.protocol.runtime import RuntimeVersions
from kinitro.protocol.validator_ws import Ack, EvalResult, JobStatus

_MAX_COLLECTION = 4

json_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**53), 2**53),
    st.floats(allow_nan=False, allow_infinity=False),
    st.text(st.characters(codec="utf-8"), max_size=12),
)
json_values = st.recursive(
    json_scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.dictionaries(st.text(st.characters(codec="utf-8"), max_size=8), inner, max_size=3),
    ),
    max_leaves=8,
)

_offsets = st.integers(-14 * 60, 14 * 60).map(lambda m: timezone(timedelta(minutes=m)))
aware_datetimes = st.datetimes(
    min_value=datetime(1971, 1, 1), max_value=datetime(2200, 1, 1), timezones=_offsets
).map(lambda d: d.astimezone(UTC))


def _constraints(metadata: list[Any]) -> dict[str, Any]:
    found: dict[str, Any] = {}
    for item in metadata:
        if isinstance(item, FieldInfo):
            found.update(_constraints(list(item.metadata)))
            continue
        for name in ("ge", "gt", "le", "lt", "min_length", "max_length", "pattern"):
            value = getattr(item, name, None)
            if value is not None:
                found[name] = value
    return found


def _split(tp: Any) -> tuple[Any, list[Any]]:
    metadata: list[Any] = []
    while get_origin(tp) is Annotated:
        args = get_args(tp)
        tp, metadata = args[0], [*args[1:], *metadata]
    return tp, metadata


def type_strategy(tp: Any, metadata: list[Any] | None = None) -> st.SearchStrategy[Any]:
    tp, extra = _split(tp)
    c = _constraints([*(metadata or []), *extra])
    origin = get_origin(tp)
    if tp is JsonValue or tp is Any:
        return json_values
    if origin is Literal:
        return st.sampled_from(get_args(tp))
    if origin in (Union, types.UnionType):
        return st.one_of([type_strategy(arg) for arg in get_args(tp)])
    if tp is type(None):
        return st.none()
    if isinstance(tp, type) and issubclass(tp, enum.Enum):
        return st.sampled_from(list(tp))
    if isinstance(tp, type) and issubclass(tp, BaseModel):
        return model_strategy(tp)
    if is_typeddict(tp):
        hints = get_type_hints(tp, include_extras=True)
        return st.fixed_dictionaries({k: type_strategy(v) for k, v in hints.items()})
    if tp is bool:
        return st.booleans()
    if tp is int:
        low = c.get("ge", c["gt"] + 1 if "gt" in c else -(2**63))
        high = c.get("le", c["lt"] - 1 if "lt" in c else 2**63)
        return st.integers(low, high)
    if tp is float:
        return st.floats(
            min_value=c.get("ge", c.get("gt")),
            max_value=c.get("le", c.get("lt")),
            exclude_min="gt" in c,
            exclude_max="lt" in c,
            allow_nan=False,
            allow_infinity=False,
        )
    if tp is str:
        low, high = c.get("min_length", 0), c.get("max_length", 10_000)
        if "pattern" in c:
            return st.from_regex(c["pattern"], fullmatch=True).filter(
                lambda s: low <= len(s) <= high
            )
        return st.text(st.characters(codec="utf-8"), min_size=low, max_size=min(high, 40))
    if tp is AwareDatetime or tp is datetime:
        return aware_datetimes
    if origin is list:
        (item,) = get_args(tp)
        return st.lists(
            type_strategy(item),
            min_size=c.get("min_length", 0),
            max_size=min(c.get("max_length", _MAX_COLLECTION), _MAX_COLLECTION),
        )
    if origin is tuple:
        return st.tuples(*(type_strategy(arg) for arg in get_args(tp)))
    if origin is dict:
        key, value = get_args(tp)
        return st.dictionaries(type_strategy(key), type_strategy(value), max_size=_MAX_COLLECTION)
    raise NotImplementedError(f"no strategy for {tp!r}")


def _build(model: type[BaseModel], kwargs: dict[str, Any]) -> Any:
    try:
        return model(**kwargs)
    except ValidationError:
        reject()


def model_strategy(model: type[BaseModel]) -> st.SearchStrategy[Any]:
    """A strategy for valid instances of ``model``."""
    if model in OVERRIDES:
        return OVERRIDES[model]()
    fields = {}
    for name, info in model.model_fields.items():
        strategy = type_strategy(info.annotation, list(info.metadata))
        if not info.is_required() and name not in {"id", "type"}:
            strategy = st.one_of(st.just(_OMIT), strategy)
        fields[name] = strategy
    return (
        st.fixed_dictionaries(fields)
        .map(lambda kw: {k: v for k, v in kw.items() if v is not _OMIT})
        .map(lambda kw: _build(model, kw))
    )


_OMIT = object()


# ---------------------------------------------------------------- overrides


@st.composite
def _task_metrics(draw: st.DrawFn) -> TaskMetrics:
    episodes = draw(st.integers(0, 1000))
    scored = draw(st.integers(0, episodes))
    successes = draw(st.integers(0, scored))
    low, high = sorted(draw(st.lists(st.floats(0, 1), min_size=2, max_size=2)))
    return TaskMetrics(
        episodes=episodes,
        successes=successes,
        success_rate=successes / scored if scored else 0.0,
        ci_low=low,
        ci_high=high,
        mean_return=draw(st.floats(-1e6, 1e6)),
        mean_steps_to_success=draw(st.none() | st.floats(0, 500)),
        failures=draw(type_strategy(TaskMetrics.model_fields["failures"].annotation)),
        scored_episodes=scored,
    )


@st.composite
def _artifact(draw: st.DrawFn) -> ArtifactRef:
    registry = draw(st.sampled_from(["hf", "local"]))
    fields = ArtifactRef.model_fields
    revision = (
        draw(st.binary(min_size=20, max_size=20)).hex()
        if registry == "hf"
        else draw(type_strategy(fields["revision"].annotation, list(fields["revision"].metadata)))
    )
    return ArtifactRef(
        registry=registry,
        repo=draw(type_strategy(fields["repo"].annotation, list(fields["repo"].metadata))),
        revision=revision,
        sha256=draw(st.binary(min_size=32, max_size=32)).hex(),
        size_bytes=draw(st.integers(0, 2**40)),
    )


@st.composite
def _job_status(draw: st.DrawFn) -> JobStatus:
    total = draw(st.integers(0, 10_000))
    return JobStatus(
        job_id=draw(st.from_regex(r"[a-z0-9]{1,20}", fullmatch=True)),
        state=draw(st.sampled_from(list(JobState))),
        seq=draw(st.integers(0, 2**31)),
        detail=draw(st.none() | st.text(st.characters(codec="utf-8"), max_size=20)),
        episodes_done=draw(st.integers(0, total)),
        episodes_total=total,
        at=draw(aware_datetimes),
    )


@st.composite
def _eval_result(draw: st.DrawFn) -> EvalResult:
    state = draw(st.sampled_from([s for s in JobState if s.is_terminal]))
    metrics_s = model_strategy(EvalMetrics)
    metrics = draw(metrics_s if state is JobState.COMPLETED else st.none() | metrics_s)
    started = draw(aware_datetimes)
    return EvalResult(
        job_id=draw(st.from_regex(r"[A-Za-z0-9][A-Za-z0-9._:@-]{0,30}", fullmatch=True)),
        state=state,
        metrics=metrics,
        error=draw(st.none() | st.text(st.characters(codec="utf-8"), max_size=30)),
        failure_cause=draw(type_strategy(EvalResult.model_fields["failure_cause"].annotation)),
        started_at=started,
        finished_at=started + draw(st.timedeltas(timedelta(0), timedelta(days=2))),
        evaluator_version=draw(st.from_regex(r"[0-9]\.[0-9]{1,3}", fullmatch=True)),
        runtime=draw(st.none() | model_strategy(RuntimeVersions)),
    )


@st.composite
def _ack(draw: st.DrawFn) -> Ack:
    ack_id = draw(st.binary(min_size=16, max_size=16)).hex()
    if draw(st.booleans()):
        return Ack(ack_id=ack_id)
    return Ack.reject(
        ack_id,
        draw(type_strategy(Ack.model_fields["error_code"].annotation).filter(bool)),
        draw(st.none() | st.text(st.characters(codec="utf-8"), max_size=30)),
    )


OVERRIDES: dict[type[BaseModel], Any] = {
    TaskMetrics: _task_metrics,
    ArtifactRef: _artifact,
    JobStatus: _job_status,
    EvalResult: _eval_result,
    Ack: _ack,
}
