"""Value objects shared by the GenAI service and its providers.

Providers see only these: no Flask, no HTTP, no database.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Literal, Protocol

Kind = Literal["generate", "edit", "compose"]


@dataclass(frozen=True)
class GenerationRequest:
    """One upstream call: one candidate.

    ``images`` are already sanitized PNG bytes (EXIF applied, metadata gone,
    long side <= 4096 px), in the order the caller gave them.
    """

    kind: Kind
    prompt: str
    model: str
    images: tuple[bytes, ...] = ()
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    seed: int | None = None
    max_output_tokens: int | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None
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
