"""Value objects and protocols shared by the GenAI service, its gates and its
providers.

Providers see only these: no Flask, no HTTP, no database.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

Kind = Literal["generate", "edit", "compose"]

INT32 = 2**31 - 1
MAX_CANDIDATES = 6


def _clamp_candidates(value: Any) -> Any:
    """`candidate_count` is clamped to 1..6, not refused (existing clients send larger counts)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value == value:  # not NaN
        return min(MAX_CANDIDATES, max(1, int(value)))
    return value


class GenerationOptions(BaseModel):
    """What a caller may ask of a generation, beside the prompt and images.

    Defined once: the request schemas of every door inherit these fields (so
    the OpenAPI document shows them), the generation service passes the one
    object on, the conversation records it, and each provider maps it to its
    own wire format. A new option is a field here plus its line in each
    provider's mapping. None means "not asked": the model's own default.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    # What the caller named; the catalog resolves None to the default model
    # (GenerationRequest.model is the resolved id).
    model: str | None = Field(None, max_length=100, description="Model id (see /v1/models)")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1, le=1000)
    # A request-level count: N images are N upstream calls of one candidate
    # each (GenAIService.generate), so no provider sends it.
    candidate_count: Annotated[int | None, BeforeValidator(_clamp_candidates)] = Field(
        None, description="Images to make; clamped to 1..6"
    )
    seed: int | None = Field(None, ge=-INT32 - 1, le=INT32)
    max_output_tokens: int | None = Field(None, ge=1, le=65536)
    aspect_ratio: str | None = Field(None, max_length=10, examples=["1:1", "16:9"])
    image_size: str | None = Field(None, max_length=10, examples=["1K", "2K"])

    def recorded(self) -> dict:
        """As stored with the conversation's message: what was asked."""
        return self.model_dump(exclude_none=True)


NO_OPTIONS = GenerationOptions()


class GenerationRequest(BaseModel):
    """One upstream call: one candidate.

    ``images`` are already sanitized PNG bytes (EXIF applied, metadata gone,
    long side <= 4096 px), in the order the caller gave them (pydantic keeps
    the bytes objects themselves: no copy).
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    kind: Kind
    prompt: str
    # The resolved model id (options.model is what the caller named, if any).
    model: str
    images: tuple[bytes, ...] = ()
    options: GenerationOptions = NO_OPTIONS
    # Which candidate of a multi-image request this call is (0-based). The
    # offline engine mixes it into its seed so N candidates differ.
    candidate_index: int = 0
    # The caller's language ("en" or "zh") when it named one: the offline
    # engine answers in it; None gets both, for clients that never said.
    language: str | None = None


@dataclass
class ProviderImage:
    data: bytes
    mime: str


@dataclass
class ProviderResult:
    images: list[ProviderImage] = field(default_factory=list)
    texts: list[str] = field(default_factory=list)
    finish_reason: str | None = None
    # {"prompt_tokens": int, "output_tokens": int, "total_tokens": int}
    usage: dict[str, int] = field(default_factory=dict)
    model: str = ""


class Provider(Protocol):
    name: str

    def generate(
        self,
        request: GenerationRequest,
        before_send: Callable[[], None] | None = None,
        after_send: Callable[[], None] | None = None,
    ) -> ProviderResult:
        """Make one upstream call. Raises app.errors.AppError subclasses.

        `before_send`, when given, is called just before the request's first
        byte is written (the gate's pacing wait runs in it); `after_send` once
        the request is fully written (the gate paces the next start from it).
        Neither is called for a call that never reaches the wire.
        """
        ...

    def close(self) -> None: ...


class StartSchedule(Protocol):
    """The pacing half of a gate: when calls may start (gate.Permit uses it)."""

    # When recent calls were let through (monotonic), for tests and benches.
    recent_starts: deque[float]

    def reserve_start(self) -> float:
        """Reserve the next start; return the seconds to wait for it."""
        ...

    def wait_after_last_send(self) -> float:
        """Seconds still to wait so a start is the interval after the last
        request actually sent (0 or less: go)."""
        ...

    def mark_sent(self) -> None:
        """A request is on the wire now: no start before now + interval."""
        ...


class SlotPermit(Protocol):
    """A held slot, as the code inside `with gate.slot()` sees it."""

    started: float | None

    def wait_for_start(self) -> None: ...

    def sent(self) -> None: ...


class Gate(StartSchedule, Protocol):
    """What GenAIService and the load shedding need of a gate. LocalGate (one
    process) and RedisGate (every process sharing one Redis) satisfy it."""

    max_concurrent: int
    max_queue: int

    @property
    def active(self) -> int: ...

    @property
    def waiting(self) -> int: ...

    def slot(self, deadline: float | None = None) -> AbstractContextManager[SlotPermit]:
        """Hold one upstream slot for the `with` block; raise app.errors.Busy
        (with retry_after) at once when the queue is full, or when no slot
        came within the queue timeout or before `deadline` (monotonic)."""
        ...

    def is_full(self) -> bool:
        """Every slot and queue place taken: a new caller would be refused.
        A cheap early answer, not a promise."""
        ...

    def retry_after(self) -> float:
        """A fair guess, in seconds, at when a refused caller could get in."""
        ...

    def close(self) -> None: ...
