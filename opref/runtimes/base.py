"""The one small interface every runtime adapter implements, and what a run reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np


class Status(enum.StrEnum):
    """How one run ended, as the adapter saw it (the validator turns this into a verdict)."""

    OK = "ok"  # produced an output
    ERROR = "error"  # refused or failed (a must-reject case wants exactly this)
    UNSUPPORTED = "unsupported"  # the runtime says it has no kernel for this (dtype, opset)
    FALLBACK = "fallback"  # the requested provider would not take the node


@dataclass(frozen=True)
class RuntimeInfo:
    """Who the runtime is, and whether it can run here at all."""

    spec: str
    name: str
    version: str
    available: bool
    reason: str = ""  # why not, when unavailable (e.g. the library-load error)
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Outcome:
    """One run of one case: the output or the error, and where the node ran."""

    status: Status
    output: np.ndarray | None = None
    message: str = ""
    placement: str = ""  # e.g. "CPUExecutionProvider", proven by the runtime's own report


class Adapter(Protocol):
    """A runtime opref can validate. Built once per worker process, then run per case."""

    def info(self) -> RuntimeInfo: ...

    def run(self, model: bytes, inputs: dict[str, np.ndarray]) -> Outcome: ...

    def unit_roundoff(self, dtype: str) -> float | None:
        """The accumulation's unit roundoff when it differs from the dtype's (TF32), else None."""
        ...
