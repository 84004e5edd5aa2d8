"""GenAIService: one per app (app.extensions["genai"]), shared by every
blueprint. It owns the provider (and so the one long-lived genai.Client),
the model catalog, the gate and the retry policy.

A request for N images is N upstream calls, one after another, each through
the gate and each with its own retries, all within one overall deadline.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime

from tenacity import (
    RetryCallState,
    Retrying,
    retry_if_exception,
    stop_after_attempt,
    stop_before_delay,
    wait_random_exponential,
)

from app.errors import AppError, Canceled, UpstreamError
from app.i18n import _l, translate
from app.services.genai.catalog import Catalog
from app.services.genai.contracts import Gate, GenerationRequest, Provider, ProviderResult
from app.services.genai.gate import LocalGate

log = logging.getLogger("nano_banana.genai")

MAX_BACKOFF_S = 20.0
# Retry-After for a server with GENAI_PROVIDER=gemini and no key: it takes an
# operator to fix, so clients honouring the header should not poll hard.
UNCONFIGURED_RETRY_AFTER_S = 300.0


class ProviderNotConfigured(
    AppError,
    code="provider_not_configured",
    status=503,
    message=_l(
        "GENAI_PROVIDER=gemini but no API key is set. Set GOOGLE_API_KEY (or "
        "GEMINI_API_KEY), or unset GENAI_PROVIDER to use the offline engine."
    ),
): ...


class _UnconfiguredProvider:
    name = "gemini"

    def generate(
        self, request: GenerationRequest, before_send=None, after_send=None
    ) -> ProviderResult:
        raise ProviderNotConfigured(retry_after=UNCONFIGURED_RETRY_AFTER_S)

    def close(self) -> None:
        pass


@dataclass(frozen=True)
class Attempt:
    """One provider call, as the ledger records it (the generation service
    writes the rows: this service knows no database)."""

    model: str
    candidate: int  # which image of the request (0-based)
    number: int  # 1-based: retries of one image are attempts 2, 3, ...
    outcome: str  # "ok" or the error code
    # The upstream answered with a 200 (a blocked or empty answer too).
    answered: bool
    images: int
    usage: dict[str, int]
    duration_ms: int
    started_at: datetime


OnAttempt = Callable[[Attempt], None]


@dataclass(frozen=True)
class Watch:
    """What a background job hears of its call and how it stops it: every
    attempt (`on_attempt`), each retry's number and backoff (`on_retry`),
    and `should_stop`, asked before each upstream call (a cancel lets the
    call in flight finish and starts no other)."""

    on_attempt: OnAttempt | None = None
    # (the attempt about to be made, the wait before it, the refusal's code)
    on_retry: Callable[[int, float, str | None], None] | None = None
    should_stop: Callable[[], bool] | None = None


@dataclass
class GenerationOutcome:
    """What a (possibly multi-candidate) request produced."""

    results: list[ProviderResult] = field(default_factory=list)
    warnings: list[dict] = field(default_factory=list)

    @property
    def images(self):
        return [image for result in self.results for image in result.images]

    @property
    def texts(self) -> list[str]:
        return [text for result in self.results for text in result.texts]

    @property
    def finish_reasons(self) -> list[str]:
        return [result.finish_reason for result in self.results if result.finish_reason]

    @property
    def usage(self) -> dict[str, int]:
        total: dict[str, int] = {}
        for result in self.results:
            for key, value in result.usage.items():
                total[key] = total.get(key, 0) + int(value or 0)
        return total


class GenAIService:
    def __init__(
        self,
        *,
        provider: Provider,
        catalog: Catalog,
        gate: Gate,
        max_retries: int = 2,
        backoff_s: float = 0.5,
        deadline_s: float = 90.0,
        force_single_on_retry: bool = False,
        sleep=time.sleep,
    ) -> None:
        self.provider = provider
        self.catalog = catalog
        self.gate = gate
        self.max_retries = max(0, max_retries)
        self.backoff_s = max(0.0, backoff_s)
        self.deadline_s = deadline_s
        self.force_single_on_retry = force_single_on_retry
        self._sleep = sleep

    @property
    def provider_name(self) -> str:
        return self.provider.name

    @classmethod
    def from_config(cls, config) -> GenAIService:
        return cls(
            provider=make_provider(config),
            catalog=Catalog.from_config(config),
            gate=make_gate(config),
            max_retries=int(config["GENAI_MAX_RETRIES"]),
            backoff_s=int(config["GENAI_BACKOFF_MS"]) / 1000,
            deadline_s=float(config["GENAI_DEADLINE_S"]),
            force_single_on_retry=bool(config["GENAI_FORCE_SINGLE_ON_RETRY"]),
        )

    def close(self) -> None:
        self.provider.close()
        self.gate.close()

    # ------------------------------------------------------------------

    def generate(
        self,
        request: GenerationRequest,
        on_attempt: OnAttempt | None = None,
        watch: Watch | None = None,
    ) -> GenerationOutcome:
        """Make `request.options.candidate_count` images (1 when unset; the
        options clamp it to 1..MAX_CANDIDATES), one upstream call each.

        Partial success returns what succeeded with a warning per failure;
        no success raises the first failure. `on_attempt` hears of every
        provider call, retries included, whatever its outcome. A `watch`'s
        stop ends the request with what was made so far (Canceled if none).
        """
        watch = watch or Watch()
        if on_attempt is None:
            on_attempt = watch.on_attempt
        count = request.options.candidate_count or 1
        deadline = time.monotonic() + self.deadline_s
        outcome = GenerationOutcome()
        first_error: AppError | None = None
        for index in range(count):
            if time.monotonic() >= deadline:
                message = translate(_l("Time ran out before this image."), request.language)
                outcome.warnings.append(_warning(index, "deadline", message))
                break
            try:
                call = request.model_copy(update={"candidate_index": index})
                result = self._call_with_retries(call, deadline, on_attempt, watch)
            except AppError as error:
                first_error = first_error or error
                message = error.text(request.language or "en")
                outcome.warnings.append(_warning(index, error.code, message))
                rate_limited = error.status == 429
                # Quota errors, a busy gate and a fault of ours won't go away
                # for the next candidate; don't spend more calls on them.
                if (rate_limited and self.force_single_on_retry) or not getattr(
                    error, "retryable", False
                ):
                    break
                continue
            outcome.results.append(result)
        if not outcome.results:
            assert first_error is not None
            raise first_error
        return outcome

    def _call_with_retries(
        self,
        request: GenerationRequest,
        deadline: float,
        on_attempt: OnAttempt | None = None,
        watch: Watch | None = None,
    ) -> ProviderResult:
        watch = watch or Watch()
        remaining = max(0.0, deadline - time.monotonic())

        def before_sleep(state: RetryCallState) -> None:
            _log_retry(state)
            if watch.on_retry is not None:
                error = state.outcome.exception() if state.outcome else None
                reason = getattr(error, "code", None)
                watch.on_retry(state.attempt_number + 1, state.upcoming_sleep, reason)

        retrying = Retrying(
            retry=retry_if_exception(_is_retryable),
            stop=stop_after_attempt(self.max_retries + 1) | stop_before_delay(remaining),
            wait=self._wait,
            sleep=self._sleep,
            reraise=True,
            before_sleep=before_sleep,
        )
        try:
            for attempt in retrying:
                if watch.should_stop is not None and watch.should_stop():
                    raise Canceled()
                # The slot is held for the call only, never across a backoff;
                # the pacing wait runs as the call goes out.
                with attempt, self.gate.slot(deadline) as permit:
                    number = attempt.retry_state.attempt_number
                    started, started_at = time.perf_counter(), datetime.now(UTC)
                    try:
                        result = self.provider.generate(
                            request, before_send=permit.wait_for_start, after_send=permit.sent
                        )
                    except AppError as error:
                        _report(on_attempt, request, number, started, started_at, error=error)
                        raise
                    _report(on_attempt, request, number, started, started_at, result=result)
                    return result
        except AppError as error:
            if error.status in (429, 503) and error.retry_after is None:
                # Every 429 and 503 tells the client when to come back (the
                # README promises it); without the upstream's word, the
                # longest backoff the next retry would have drawn.
                error.retry_after = self._next_backoff_s(retrying.statistics["attempt_number"])
            raise
        raise AssertionError("unreachable: tenacity reraises the last error")

    def _wait(self, state: RetryCallState) -> float:
        """Full-jitter exponential backoff, but never sooner than the
        upstream's own RetryInfo asks."""
        jitter = wait_random_exponential(multiplier=self.backoff_s, max=MAX_BACKOFF_S)(state)
        error = state.outcome.exception() if state.outcome else None
        asked = getattr(error, "retry_after", None) or 0.0
        return max(jitter, float(asked))

    def _next_backoff_s(self, attempts_made: int) -> float:
        """The top of the jitter window the wait after `attempts_made`
        attempts is drawn from (as wait_random_exponential computes it)."""
        return min(MAX_BACKOFF_S, self.backoff_s * 2 ** (attempts_made - 1))


def _report(
    on_attempt: OnAttempt | None,
    request: GenerationRequest,
    number: int,
    started: float,
    started_at: datetime,
    *,
    result: ProviderResult | None = None,
    error: AppError | None = None,
) -> None:
    if on_attempt is None:
        return
    # A provider marks an error made of a 200 answer with that answer's usage.
    usage = result.usage if result else getattr(error, "answered_usage", None)
    on_attempt(
        Attempt(
            model=request.model,
            candidate=request.candidate_index,
            number=number,
            outcome=error.code if error else "ok",
            answered=usage is not None,
            images=len(result.images) if result else 0,
            usage=dict(usage or {}),
            duration_ms=round((time.perf_counter() - started) * 1000),
            started_at=started_at,
        )
    )


def _is_retryable(error: BaseException) -> bool:
    return isinstance(error, UpstreamError) and error.retryable


def _log_retry(state: RetryCallState) -> None:
    error = state.outcome.exception() if state.outcome else None
    log.warning(
        "upstream attempt %d failed (%s); retrying in %.2fs",
        state.attempt_number,
        getattr(error, "code", type(error).__name__),
        state.upcoming_sleep,
    )


def _warning(index: int, code: str, message: str) -> dict:
    return {"candidate": index, "code": code, "message": message}


def make_provider(config) -> Provider:
    forced = (config.get("GENAI_PROVIDER") or "").strip().lower()
    key = config.get("GOOGLE_API_KEY")
    name = forced or ("gemini" if key else "offline")
    if name == "offline":
        from app.services.genai.offline import OfflineProvider

        return OfflineProvider()
    if name != "gemini":
        raise ValueError(f"GENAI_PROVIDER must be 'gemini' or 'offline', not {forced!r}")
    if not key:
        return _UnconfiguredProvider()
    from app.services.genai.gemini import GeminiProvider

    return GeminiProvider(
        api_key=key,
        base_url=config.get("GENAI_BASE_URL"),
        api_version=config.get("GENAI_API_VERSION") or "v1beta",
        timeout_s=float(config["GENAI_TIMEOUT_S"]),
        proxy=_explicit_proxy(config),
    )


def _explicit_proxy(config) -> str | None:
    """The proxy to hand the SDK, if any. One in the environment (or in .env,
    which load_dotenv puts there) is left to httpx, which reads it together
    with NO_PROXY; handed over explicitly it would route every call through
    the proxy, NO_PROXY or not. Only a proxy set elsewhere (instance config,
    a config mapping) is passed on."""
    proxy = config.get("HTTPS_PROXY")
    from_environment = os.environ.get("HTTPS_PROXY") or os.environ.get("https_proxy")
    return None if not proxy or proxy == from_environment else proxy


def make_gate(config) -> Gate:
    settings = dict(
        max_concurrent=int(config["GENAI_MAX_CONCURRENT"]),
        min_interval_s=int(config["GENAI_MIN_INTERVAL_MS"]) / 1000,
        max_queue=int(config["GENAI_MAX_QUEUE"]),
        queue_timeout_s=float(config["GENAI_QUEUE_TIMEOUT_S"]),
    )
    if config.get("REDIS_URL"):
        from app.services.genai.redis_gate import RedisGate

        return RedisGate.from_url(
            config["REDIS_URL"], lease_s=float(config["GENAI_LEASE_S"]), **settings
        )
    return LocalGate(**settings)
