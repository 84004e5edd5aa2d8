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

from app.errors import AppError, ImageTooLarge, InvalidInput, NotFound, UpstreamError
from app.extensions import db
from app.models import User
from app.services import conversations, stored_images
from app.services.genai.contracts import GenerationRequest, Kind
from app.services.genai.service import GenAIService
from app.services.image_codec import CleanImage, ingest_image, to_png

MIN_IMAGES = {"generate": 0, "edit": 1, "compose": 2}


@dataclass
class ImagingParams:
    model: str | None = None
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    candidate_count: int | None = None
    seed: int | None = None
    max_output_tokens: int | None = None
    aspect_ratio: str | None = None
    image_size: str | None = None

    def recorded(self) -> dict:
        """The parameters as stored with the message (what was asked)."""
        return {key: value for key, value in vars(self).items() if value is not None}


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


def run(
    *,
    kind: Kind,
    prompt: str,
    params: ImagingParams,
    user: User | None,
    uploads: list[bytes] = (),
    source_image_ids: list[int] = (),
    conv_id: int | None = None,
    language: str | None = None,
) -> ImagingResult:
    prompt = (prompt or "").strip()
    if not prompt:
        raise InvalidInput("The prompt is empty.", "提示词不能为空。", code="empty_prompt")
    service = genai()
    model = service.catalog.resolve(params.model)

    warnings: list[dict] = []
    conversation = None
    if conv_id is not None:
        if user is not None and user.is_authenticated:
            conversation = conversations.get_owned(user, conv_id)
        else:
            warnings.append(
                {
                    "code": "not_saved",
                    "message": "未保存到对话：登录后才会保留历史记录。"
                    if language == "zh"
                    else "Not saved to the conversation: log in to keep history.",
                }
            )

    total_images = len(uploads) + len(source_image_ids)
    service.catalog.check_options(
        model, aspect_ratio=params.aspect_ratio, image_size=params.image_size, images=total_images
    )
    if total_images < MIN_IMAGES[kind]:
        need = MIN_IMAGES[kind]
        raise InvalidInput(
            f"{kind} needs at least {need} image{'s' if need > 1 else ''}; got {total_images}.",
            f"{_kind_zh(kind)}至少需要 {need} 张图片，收到 {total_images} 张。",
            code="not_enough_images",
        )
    inputs = _source_images(user, source_image_ids) + _ingest(uploads)
    _check_request_size(inputs)

    request = GenerationRequest(
        kind=kind,
        prompt=prompt,
        model=model.id,
        images=tuple(image.data for image in inputs),
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=params.top_k,
        seed=params.seed,
        max_output_tokens=params.max_output_tokens,
        aspect_ratio=params.aspect_ratio,
        image_size=params.image_size,
        language=language,
    )
    # No database connection is held across the upstream call, which can
    # take a minute: end the request's transaction first.
    db.session.commit()

    started = time.perf_counter()
    try:
        outcome = service.generate(request, params.candidate_count or 1)
        outputs = [_normalise_output(image.data) for image in outcome.images]
    except AppError as error:
        if conversation is not None:
            failed = _turn(
                kind,
                prompt,
                params,
                inputs,
                model.id,
                _elapsed_ms(started),
                error_code=error.code,
                error_message=error.message_en,
            )
            _record_failure(user, conversation.id, failed)
        raise
    duration_ms = _elapsed_ms(started)

    result = ImagingResult(
        images=outputs,
        texts=outcome.texts,
        model=model.id,
        finish_reasons=outcome.finish_reasons,
        usage=outcome.usage,
        warnings=warnings + outcome.warnings,
        duration_ms=duration_ms,
    )
    if conversation is not None:
        turn = _turn(
            kind,
            prompt,
            params,
            inputs,
            model.id,
            duration_ms,
            outputs=[stored_images.save(image) for image in outputs],
            texts=outcome.texts,
            finish_reasons=outcome.finish_reasons,
            usage=outcome.usage,
        )
        user_message, reply = conversations.record_turn(user, conversation.id, turn)
        result.conversation_id = conversation.id
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
            f"The images add up to {mb:.1f} MB once encoded; the model accepts 20 MB per "
            "request. Send fewer or smaller images.",
            f"图片编码后共 {mb:.1f} MB，模型每次请求最多接受 20 MB，请减少图片数量或缩小图片。",
            code="request_too_large",
        )


def _ingest(uploads: list[bytes]) -> list[CleanImage]:
    config = current_app.config
    return [
        ingest_image(
            upload,
            max_pixels=config["MAX_IMAGE_PIXELS"],
            max_bytes=config["MAX_IMAGE_BYTES"],
        )
        for upload in uploads
    ]


def _source_images(user: User | None, image_ids: list[int]) -> list[CleanImage]:
    images = []
    for image_id in image_ids:
        try:
            image = stored_images.readable_image(user, image_id)
        except NotFound:
            raise NotFound(
                f"Image {image_id} does not exist or is not yours.",
                f"图片 {image_id} 不存在或不属于你。",
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
            "The image model returned an image that could not be read.",
            "图像模型返回的图片无法读取。",
            code="upstream_bad_response",
            status=502,
        ) from None


def _elapsed_ms(started: float) -> int:
    return round((time.perf_counter() - started) * 1000)


def _turn(
    kind, prompt, params, inputs, model_id, duration_ms, **outcome
) -> conversations.TurnRecord:
    """The record of one turn, its input images written to the store."""
    return conversations.TurnRecord(
        kind=kind,
        prompt=prompt,
        params=params.recorded(),
        inputs=[stored_images.save(image) for image in inputs],
        model=model_id,
        duration_ms=duration_ms,
        **outcome,
    )


def _record_failure(user, conversation_id, turn: conversations.TurnRecord) -> None:
    try:
        conversations.record_turn(user, conversation_id, turn)
    except Exception:  # the caller's error matters more than the record of it
        db.session.rollback()
        current_app.logger.exception("could not record failed turn")


def _kind_zh(kind: str) -> str:
    return {"generate": "生成", "edit": "编辑", "compose": "合成"}[kind]
