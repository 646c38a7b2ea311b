"""Public views: what the backend's REST API and the realtime snapshot show (JSON).

One model per thing a reader sees, shared by everyone who reads it: the backend's routes
(``response_model``) and realtime snapshot, the validator (``GET /api/v1/weights/latest``)
and the dashboard, whose TypeScript types are generated from these models' JSON schemas
(``scripts/build-web``; docs/dashboard.md). A view names every field it shows: columns the
database adds later stay private until a view names them.

Views are read models, not wire messages: they accept and drop unknown keys (a newer
backend may show more), and they are not frozen. Values that are free JSON in the
database (a score's ``detail``, a result's ``metrics``) stay free JSON here.

Modules: :mod:`._base` (``View``, ``Page``), :mod:`.competitions`, :mod:`.jobs`,
:mod:`.network`; everything is re-exported here.
"""

from kinitro.protocol.views._base import Json, Page, View
from kinitro.protocol.views.competitions import (
    Competition,
    CompetitionPreset,
    ExplainedScore,
    Leaderboard,
    LeaderboardRow,
    LeaderDecision,
    PairedTest,
    QuorumProgress,
    Score,
    ScoreDetail,
)
from kinitro.protocol.views.jobs import (
    Assignment,
    Episode,
    Job,
    JobAction,
    JobDetail,
    JobRow,
    JobStatus,
    ListedResult,
    RenderClaim,
    RenderState,
    Result,
    StepBatch,
    StepSample,
    Submission,
    SubmissionDetail,
    SubmissionRerun,
    VideoReport,
    VideoStatus,
)
from kinitro.protocol.views.network import (
    Audit,
    Health,
    Round,
    Stats,
    Strike,
    Validator,
    ValidatorRow,
    WeightSet,
    WeightShare,
)
from kinitro.protocol.views.snapshot import SnapshotData

__all__ = [
    "Assignment",
    "Audit",
    "Competition",
    "CompetitionPreset",
    "Episode",
    "ExplainedScore",
    "Health",
    "Job",
    "JobAction",
    "JobDetail",
    "JobRow",
    "JobStatus",
    "Json",
    "LeaderDecision",
    "Leaderboard",
    "LeaderboardRow",
    "ListedResult",
    "Page",
    "PairedTest",
    "QuorumProgress",
    "RenderClaim",
    "RenderState",
    "Result",
    "Round",
    "Score",
    "ScoreDetail",
    "SnapshotData",
    "Stats",
    "StepBatch",
    "StepSample",
    "Strike",
    "Submission",
    "SubmissionDetail",
    "SubmissionRerun",
    "Validator",
    "ValidatorRow",
    "VideoReport",
    "VideoStatus",
    "View",
    "WeightSet",
    "WeightShare",
]
