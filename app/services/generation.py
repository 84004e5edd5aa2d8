"""Generate, edit, compose: validation, inputs, the GenAI call, and the
record of the turn in the caller's conversation.

Order matters: everything a client can get wrong (model, options, images,
someone else's conversation) is refused before the upstream is called, and
nothing is written for a refused request.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

from flask import current_app

from app.errors import (
    AppError,
    Busy,
    Canceled,
    ImageTooLarge,
    InvalidInput,
    NotFound,
    UpstreamError,
)
from app.extensions import db
from app.i18n import N_, _l, translate
from app.models import User
from app.services import conversations, ledger, quota, stored_images
from app.services.decode_budget import DecodeSlots, check_request_pixels
from app.services.genai.contracts import GenerationOptions, GenerationRequest, Kind
from app.services.genai.service import Attempt, GenAIService, Watch
from app.services.image_codec import (
    CleanImage,
    check_upload,
    ingest_image,
    read_upload_header,
    to_png,
)

MIN_IMAGES = {"generate": 0, "edit": 1, "compose": 2}
# Whole sentences per kind: a translation can't be assembled from "edit" and
# a plural ending.
TOO_FEW_IMAGES = {
    "edit": N_("edit needs at least 1 image; got %(got)s."),
    "compose": N_("compose needs at least 2 images; got %(got)s."),
}


@dataclass
class ImagingResult:
    images: list[CleanImage]
    texts: list[str]
    model: str
    finish_reasons: list[str]
    usage: dict
    warnings: list[dict] = field(default_factory=list)
    duration_ms: int = 0
    image_ids: list[int] = field(default_factory=list)
    conversation_id: int | None = None
    user_message: object | None = None
    message: object | None = None


def genai() -> GenAIService:
    return current_app.extensions["genai"]


@dataclass
class Prepared:
    """A request that passed every check the door can make before the
    upstream: the model resolved, options checked, input images decoded and
    cleaned, the conversation found to be the caller's."""

    kind: Kind
    prompt: str
    options: GenerationOptions
    model: str
    inputs: list[CleanImage]
    user: User | None
    conversation_id: int | None = None
    language: str | None = None
    warnings: list[dict] = field(default_factory=list)
    # A failed turn this request tries again (its message ids): replaced when recorded.
    replaces: tuple[int, ...] = ()

    @property
    def images_asked(self) -> int:
        return self.options.candidate_count or 1


def run(
    *,
    kind: Kind,
    prompt: str,
    options: GenerationOptions,
    user: User | None,
    uploads: list[bytes] = (),
    source_image_ids: list[int] = (),
    conv_id: int | None = None,
    language: str | None = None,
    caller: quota.Caller | None = None,
    retry_of: int | None = None,
) -> ImagingResult:
    """`caller` says who pays (user, token, address, request id); without
    one, `user` alone (the CLI: no address, only the install's budget)."""
    prepared = prepare(
        kind=kind,
        prompt=prompt,
        options=options,
        user=user,
        uploads=uploads,
        source_image_ids=source_image_ids,
        conv_id=conv_id,
        language=language,
        retry_of=retry_of,
    )
    return execute(prepared, caller or quota.Caller(user=user))


def prepare(
    *,
    kind: Kind,
    prompt: str,
    options: GenerationOptions,
    user: User | None,
    uploads: list[bytes] = (),
    source_image_ids: list[int] = (),
    conv_id: int | None = None,
    language: str | None = None,
    retry_of: int | None = None,
) -> Prepared:
    """Everything a client can get wrong, refused before anything is spent
    or queued. A background job is prepared at the door, run later."""
    prompt = (prompt or "").strip()
    if not prompt:
        raise InvalidInput(_l("The prompt is empty."), code="empty_prompt")
    service = genai()
    model = service.catalog.resolve(options.model)

    warnings: list[dict] = []
    conversation_id = None
    if conv_id is not None:
        if user is not None and user.is_authenticated:
            conversation_id = conversations.get_owned(user, conv_id).id
        else:
            warnings.append(
                {
                    "code": "not_saved",
                    "message": translate(
                        _l("Not saved to the conversation: log in to keep history."), language
                    ),
                }
            )

    replaces: tuple[int, ...] = ()
    if retry_of is not None:
        if conversation_id is None:
            raise InvalidInput(
                _l("retry_of names a failed turn of a conversation: send its conv_id too."),
                code="retry_needs_conversation",
            )
        replaces = conversations.failed_turn(user, conversation_id, retry_of)

    total_images = len(uploads) + len(source_image_ids)
    service.catalog.check_options(model, options, images=total_images)
    if total_images < MIN_IMAGES[kind]:
        raise InvalidInput(_l(TOO_FEW_IMAGES[kind], got=total_images), code="not_enough_images")
    inputs = _source_images(user, source_image_ids) + _ingest(uploads)
    _check_request_size(inputs)
    return Prepared(
        kind=kind,
        prompt=prompt,
        options=options,
        model=model.id,
        inputs=inputs,
        user=user,
        conversation_id=conversation_id,
        language=language,
        warnings=warnings,
        replaces=replaces,
    )


def check_quota(prepared: Prepared, caller: quota.Caller) -> None:
    """Refuse now what the quota or budget would refuse when the job runs
    (the hold is taken for real, and given back: a job waiting in the queue
    must not hold images it may never make)."""
    reservation = quota.reserve(
        caller,
        prepared.images_asked,
        prepared.model,
        prepared.options.image_size,
        provider=genai().provider_name,
    )
    reservation.release()


def execute(prepared: Prepared, caller: quota.Caller, watch: Watch | None = None) -> ImagingResult:
    """Reserve quota, call the upstream, account for it, record the turn."""
    service = genai()
    user, options, inputs = prepared.user, prepared.options, prepared.inputs
    request = GenerationRequest(
        kind=prepared.kind,
        prompt=prepared.prompt,
        model=prepared.model,
        images=tuple(image.data for image in inputs),
        options=options,
        language=prepared.language,
    )
    # Refused whole here, before the upstream, when the caller's quota or the
    # install's budget can't take every image asked for.
    reservation = quota.reserve(
        caller,
        prepared.images_asked,
        prepared.model,
        options.image_size,
        provider=service.provider_name,
    )
    # No database connection is held across the upstream call, which can
    # take a minute: end the request's transaction first.
    db.session.commit()
    attempts: list[Attempt] = []
    observe = watch.on_attempt if watch is not None else None

    def on_attempt(attempt: Attempt) -> None:
        attempts.append(attempt)
        if observe is not None:
            observe(attempt)

    outputs: list[CleanImage] = []
    started = time.perf_counter()
    try:
        try:
            outcome = service.generate(request, on_attempt=on_attempt, watch=watch)
            outputs = [_normalise_output(image.data) for image in outcome.images]
        finally:
            _account(caller, request, service.provider_name, attempts, reservation, outputs)
    except AppError as error:
        # A cancel is the caller's own doing, not a failure to keep in the
        # thread; a job that met a full gate is put back in line, not failed.
        requeued = watch is not None and isinstance(error, Busy)
        if prepared.conversation_id is not None and not (requeued or isinstance(error, Canceled)):
            failed = _turn(
                prepared,
                _elapsed_ms(started),
                error_code=error.code,
                error_message=error.text("en"),
            )
            stored = _record_failure(user, prepared.conversation_id, failed, prepared.replaces)
            if stored is not None:
                # Which message records this failure: a retry names it (retry_of).
                error.extra = {**error.extra, "message_id": stored.id}
        raise
    duration_ms = _elapsed_ms(started)

    result = ImagingResult(
        images=outputs,
        texts=outcome.texts,
        model=prepared.model,
        finish_reasons=outcome.finish_reasons,
        usage=outcome.usage,
        warnings=prepared.warnings + outcome.warnings,
        duration_ms=duration_ms,
    )
    if prepared.conversation_id is not None:
        turn = _turn(
            prepared,
            duration_ms,
            outputs=[stored_images.save(image) for image in outputs],
            texts=outcome.texts,
            finish_reasons=outcome.finish_reasons,
            usage=outcome.usage,
        )
        user_message, reply = conversations.record_turn(
            user, prepared.conversation_id, turn, prepared.replaces
        )
        result.conversation_id = prepared.conversation_id
        result.user_message = user_message
        result.message = reply
        result.image_ids = [link.image_id for link in reply.image_links if link.role == "output"]
    return result


# Gemini takes at most 20 MB per request, inline images base64-encoded (4/3).
UPSTREAM_REQUEST_LIMIT = 20 * 1024 * 1024
ENCODED_OVERHEAD = 4 / 3


def _check_request_size(inputs: list[CleanImage]) -> None:
    encoded = sum(image.byte_size for image in inputs) * ENCODED_OVERHEAD
    if encoded > UPSTREAM_REQUEST_LIMIT * 0.95:
        mb = encoded / 1024 / 1024
        raise ImageTooLarge(
            _l(
                "The images add up to %(mb).1f MB once encoded; the model accepts 20 MB per "
                "request. Send fewer or smaller images.",
                mb=mb,
            ),
            code="request_too_large",
        )


def _ingest(uploads: list[bytes]) -> list[CleanImage]:
    """Every upload checked before any is decoded: a bad file anywhere, a
    JPEG scan bomb or too many pixels in all is refused before the first
    costs anything. Pillow only ever sees uploads inside one of the process's
    few decode slots (even a header can carry 64 MB of compressed text)."""
    if not uploads:
        return []
    config = current_app.config
    limits = {"max_pixels": config["MAX_IMAGE_PIXELS"], "max_bytes": config["MAX_IMAGE_BYTES"]}
    for upload in uploads:
        check_upload(upload, limits["max_bytes"])
    images: list[CleanImage] = []
    with _decode_slots().hold():
        headers = [read_upload_header(upload, **limits) for upload in uploads]
        check_request_pixels([header.size for header in headers], config["MAX_REQUEST_PIXELS"])
        for upload in uploads:
            images.append(ingest_image(upload, **limits))
            _check_request_size(images)  # as it grows: the images are held until the end
    return images


def _decode_slots() -> DecodeSlots:
    """One per app (per process): the CPU and memory it bounds are the process's."""
    slots = current_app.extensions.get("decode_slots")
    if slots is None:
        config = current_app.config
        created = DecodeSlots(
            config["DECODE_CONCURRENCY"],
            config["DECODE_MAX_QUEUE"],
            config["DECODE_QUEUE_TIMEOUT_S"],
        )
        slots = current_app.extensions.setdefault("decode_slots", created)
    return slots


def _source_images(user: User | None, image_ids: list[int]) -> list[CleanImage]:
    images = []
    for image_id in image_ids:
        try:
            image = stored_images.readable_image(user, image_id)
        except NotFound:
            raise NotFound(
                _l("Image %(image_id)s does not exist or is not yours.", image_id=image_id),
                code="image_not_found",
            ) from None
        images.append(
            CleanImage(
                data=stored_images.image_bytes(image), width=image.width, height=image.height
            )
        )
    return images


def _normalise_output(data: bytes) -> CleanImage:
    """Outputs are PNG without metadata, whatever the upstream sent."""
    try:
        return to_png(data)
    except AppError:
        raise UpstreamError(
            _l("The image model returned an image that could not be read."),
            code="upstream_bad_response",
            status=502,
        ) from None


def _account(caller, request, provider, attempts, reservation, outputs) -> None:
    """Ledger rows for the attempts and the reservation settled on what the
    caller got, in one transaction. A failure here is logged, never raised:
    the caller's images (or error) matter more. Should the ledger's rows fail,
    the reservation is still settled on its own; a hold left unsettled even
    so is swept at its expiry."""
    image_size = request.options.image_size
    cost = ledger.billed_cost(provider, image_size, attempts)

    def write_ledger(session) -> None:
        ledger.record_attempts(
            caller,
            kind=request.kind,
            image_size=image_size,
            provider=provider,
            attempts=attempts,
            session=session,
        )

    for also in (write_ledger, None):
        try:
            reservation.settle(len(outputs), cost, also=also)
            return
        except Exception:
            db.session.rollback()
            current_app.logger.exception("could not record usage of request %s", caller.request_id)


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _turn(prepared: Prepared, duration_ms: int, **outcome) -> conversations.TurnRecord:
    """The record of one turn, its input images written to the store."""
    return conversations.TurnRecord(
        kind=prepared.kind,
        prompt=prepared.prompt,
        params=prepared.options.recorded(),
        inputs=[stored_images.save(image) for image in prepared.inputs],
        model=prepared.model,
        duration_ms=duration_ms,
        **outcome,
    )


def _record_failure(user, conversation_id, turn: conversations.TurnRecord, replaces=()):
    """The failed reply as stored, or None."""
    try:
        return conversations.record_turn(user, conversation_id, turn, replaces)[1]
    except Exception:  # the caller's error matters more than the record of it
        db.session.rollback()
        current_app.logger.exception("could not record failed turn")
        return None
