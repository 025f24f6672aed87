"""Runtime tracer: the ground truth for GL001/GL002 from a real PyTorch run.

Importing this package does not import torch; a watch imports it when it starts.
"""

from gradlint.trace.recorder import Recorder, StopTrace, TraceFinding, watch
from gradlint.trace.runner import TraceResult, run_script

__all__ = ["Recorder", "StopTrace", "TraceFinding", "TraceResult", "run_script", "watch"]
