"""Domain errors. Services raise these; app/web/errors.py turns them into the
one JSON error shape. Nothing here knows about HTTP requests.

Each error carries a stable ``code`` (what clients branch on), the HTTP
``status`` it maps to, and one ``message`` from the catalogue (app/i18n.py),
rendered in the caller's language when the answer is written. A raise site
with more to say passes its own: ``InvalidInput(_l("… %(name)s …", name=…))``.
"""

from __future__ import annotations

from typing import Any

from app.i18n import _l, translate


class AppError(Exception):
    code = "error"
    status = 400
    message: Any = _l("Request failed.")

    def __init__(
        self,
        message: Any = None,
        *,
        code: str | None = None,
        status: int | None = None,
        retry_after: float | None = None,
        extra: dict | None = None,
    ) -> None:
        if code:
            self.code = code
        if status:
            self.status = status
        if message is not None:
            self.message = message
        self.retry_after = retry_after
        self.extra = extra or {}
        super().__init__(self.text("en"))

    def __init_subclass__(
        cls, *, code: str | None = None, status: int | None = None, message: Any = None, **kwargs
    ) -> None:
        """A subclass declares what it differs in, in its class statement
        (`class NotFound(AppError, code=…, status=…, message=…)`) or as class
        attributes."""
        super().__init_subclass__(**kwargs)
        for name, value in (("code", code), ("status", status), ("message", message)):
            if value is not None:
                setattr(cls, name, value)

    def text(self, language: str | None = None) -> str:
        """The message in `language` ("en" for logs, the CLI and recorded
        failures), or in the request's when None."""
        return str(self.message) if language is None else translate(self.message, language)


# One line each, a table: what a client branches on (code), the HTTP status,
# and what a person reads.
# fmt: off
class NotFound(AppError, code="not_found", status=404, message=_l("Not found.")): ...
class Conflict(AppError, code="conflict", status=409, message=_l("Conflict.")): ...
class Unauthorized(AppError, code="unauthorized", status=401, message=_l("Please log in.")): ...
class Forbidden(AppError, code="forbidden", status=403, message=_l("Only an administrator can do this.")): ...
class QuotaExceeded(AppError, code="quota_exceeded", status=429, message=_l("Your image quota is used up.")): ...
class BudgetExhausted(AppError, code="budget_exhausted", status=429, message=_l("This server's monthly spending budget is used up.")): ...
class InvalidInput(AppError, code="invalid_input", status=400, message=_l("Invalid input.")): ...
class Busy(AppError, code="busy", status=503, message=_l("The server is busy generating other images. Try again shortly.")): ...
class InvalidImage(AppError, code="invalid_image", status=400, message=_l("The file is not a readable image (corrupt or truncated).")): ...
class UnsupportedImage(AppError, code="unsupported_image", status=415, message=_l("Unsupported image format. Use PNG, JPEG, WEBP or GIF.")): ...
class ImageTooLarge(AppError, code="image_too_large", status=413, message=_l("The image is too large.")): ...
class Canceled(AppError, code="canceled", status=409, message=_l("Canceled before it finished.")): ...
class TooManyJobs(AppError, code="too_many_jobs", status=429, message=_l("You have too many images waiting or in progress. Wait for one to finish.")): ...
class QueueFull(AppError, code="queue_full", status=503, message=_l("The queue of images waiting is full. Try again shortly.")): ...
class JobFinished(AppError, code="job_finished", status=409, message=_l("This job has already finished.")): ...
class JobNotSaveable(AppError, code="job_not_saveable", status=409, message=_l("This job has no result to save, or it is saved already.")): ...
class TooManyStreams(AppError, code="too_many_streams", status=429, message=_l("Too many live updates are open; ask for the job's status instead.")): ...
class StreamsFull(AppError, code="streams_full", status=503, message=_l("The server has too many live updates open; ask for the job's status instead.")): ...
# fmt: on


class UpstreamError(AppError, code="upstream_error", status=502):
    """A fault of the upstream model (or of reaching it).

    ``retryable`` says whether the same call may succeed if tried again;
    ``retry_after`` (seconds) is the upstream's own RetryInfo when it gave one.
    """

    message = _l("The image model returned an error.")

    def __init__(self, *args, retryable: bool = False, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self.retryable = retryable
