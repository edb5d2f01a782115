"""The replay engine: re-execute a recorded session's tool calls in a fresh sandbox and report,
step by step, whether what happens now is what the log says happened then.

    from replay import ReplayOptions, replay_session
    report = replay_session(store, "3f2a9c1e0b7d4e21", ReplayOptions(stop_at_first=True))

Modules: `recorded` (reading a session stream), `normalize` (noise normalizers), `compare`
(field-by-field verdicts), `runner` (one session), `stream` (the replay-<id> stream), `corpus`
(`--all`), `report` (human and JSON output), `rate` (determinism rate), `command` (the CLI's
library half).
"""

from replay.model import Difference, ReplayReport, StepResult
from replay.runner import ReplayOptions, replay_session

__all__ = ["Difference", "ReplayOptions", "ReplayReport", "StepResult", "replay_session"]
