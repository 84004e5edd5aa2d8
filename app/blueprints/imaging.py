"""Generation, editing and composition (/v1/*) and the model catalog."""

from __future__ import annotations

import base64

from flask import current_app, request
from flask_login import current_user
from flask_openapi3 import APIBlueprint, Tag

from app.blueprints import jobs as job_views
from app.errors import InvalidInput, Unauthorized
from app.extensions import limiter
from app.i18n import _l, named_language
from app.services import generation, jobs
from app.web.client import client_address, current_caller
from app.web.pipeline import FORM_TYPES
from app.web.schemas.common import ErrorOut, MessageOut, error_responses
from app.web.schemas.imaging import GenerateBody, ImageForm, ImagingOut, ModelsOut
from app.web.schemas.jobs import JobOut

bp = APIBlueprint(
    "imaging",
    __name__,
    url_prefix="/v1",
    abp_tags=[Tag(name="imaging")],
    abp_responses=error_responses(),
)

ERRORS = {
    400: ErrorOut,
    401: ErrorOut,
    404: ErrorOut,
    413: ErrorOut,
    415: ErrorOut,
    429: ErrorOut,
    502: ErrorOut,
    503: ErrorOut,
    504: ErrorOut,
}


# Refused at once while the gate is full, before the session is read: the
# request pipeline's shedding layer (app/web/shedding.py) takes these.
GENERATION_ENDPOINTS = frozenset({"imaging.generate", "imaging.edit", "imaging.compose"})


FORM_ENDPOINTS = frozenset({"imaging.edit", "imaging.compose"})


@bp.before_request
def require_a_form():
    """edit and compose read a form (uploads travel as files). A JSON body
    would fail validation as "prompt is required", which sends the caller
    looking in the wrong place: say what to send instead."""
    if request.endpoint in FORM_ENDPOINTS and request.mimetype not in FORM_TYPES:
        raise InvalidInput(
            _l(
                "Send %(path)s as multipart/form-data: a prompt field, the images as files, "
                "and/or source_image_ids of images already stored.",
                path=request.path,
            ),
            code="unsupported_media_type",
            status=415,
        )


def _generation_limit() -> str:
    return current_app.config["GENERATION_RATE_LIMIT"]


def _caller_key() -> str:
    """Per user when logged in (session or token), else per address."""
    if current_user.is_authenticated:
        return f"user:{current_user.id}"
    return f"ip:{client_address()}"


def _caller():
    if current_user.is_authenticated:
        return current_user._get_current_object()
    if current_app.config["REQUIRE_AUTH_FOR_GENERATION"]:
        raise Unauthorized(
            _l("Log in or send an API token (Authorization: Bearer) to generate images."),
        )
    return None


def _respond(result: generation.ImagingResult):
    """The images are spliced in as bytes: base64 needs no JSON escaping, and
    megabytes of it through pydantic and json.dumps cost copies and CPU."""
    out = ImagingOut(
        images=[],
        texts=result.texts,
        image_ids=result.image_ids,
        model=result.model,
        finish_reasons=result.finish_reasons,
        usage=result.usage,
        warnings=result.warnings,
        duration_ms=result.duration_ms,
        conversation_id=result.conversation_id,
        user_message=MessageOut.of(result.user_message) if result.user_message else None,
        message=MessageOut.of(result.message) if result.message else None,
    )
    fields = out.model_dump(mode="json")
    del fields["images"]
    rest = current_app.json.dumps(fields).encode()
    parts = [b'{"images":[']
    for index, image in enumerate(result.images):
        parts += [b',"' if index else b'"', base64.b64encode(image.data), b'"']
    parts += [b"]", b"," + rest[1:] if len(rest) > 2 else b"}", b"\n"]
    return current_app.response_class(b"".join(parts), mimetype=current_app.json.mimetype)


def wants_job() -> bool:
    """`Prefer: respond-async` (RFC 7240), among other preferences or not."""
    for header in request.headers.getlist("Prefer"):
        for preference in header.split(","):
            if preference.split(";")[0].split("=")[0].strip().lower() == "respond-async":
                return True
    return False


def _run(kind, **fields):
    """The one door for the three routes: answered now, or accepted as a job
    (checked the same way first) and answered 202."""
    user = _caller()
    caller = current_caller(user)
    request_fields = dict(kind=kind, user=user, language=named_language(), **fields)
    if wants_job():
        return job_views.accepted(jobs.submit(generation.prepare(**request_fields), caller))
    return _respond(generation.run(**request_fields, caller=caller))


def _run_multipart(kind, form: ImageForm):
    return _run(
        kind,
        prompt=form.prompt,
        options=form.options(),
        uploads=[upload.read() for upload in form.files],
        source_image_ids=form.source_image_ids,
        conv_id=form.conv_id,
        retry_of=form.retry_of,
    )


@bp.get("/models", responses={200: ModelsOut})
def list_models():
    """The models offered, what each accepts, and the active provider."""
    service = generation.genai()
    return ModelsOut(
        provider=service.provider_name,
        default_model=service.catalog.default.id,
        models=[model.as_dict() for model in service.catalog.models],
    ).model_dump()


@bp.post("/generate", responses={200: ImagingOut, 202: JobOut, **ERRORS})
@limiter.limit(_generation_limit, key_func=_caller_key)
def generate(body: GenerateBody):
    """Text to image. Returns base64 PNGs (`images`) and the model's `texts`.
    With `Prefer: respond-async`: 202 and the job (`Location: /v1/jobs/{id}`)."""
    return _run(
        "generate",
        prompt=body.prompt,
        options=body.options(),
        conv_id=body.conv_id,
        retry_of=body.retry_of,
    )


@bp.post("/edit", responses={200: ImagingOut, 202: JobOut, **ERRORS})
@limiter.limit(_generation_limit, key_func=_caller_key)
def edit(form: ImageForm):
    """Edit one image (upload `files` or name `source_image_ids`) by prompt.
    With `Prefer: respond-async`: 202 and the job."""
    return _run_multipart("edit", form)


@bp.post("/compose", responses={200: ImagingOut, 202: JobOut, **ERRORS})
@limiter.limit(_generation_limit, key_func=_caller_key)
def compose(form: ImageForm):
    """Compose two or more images (tile, blend, transfer a style).
    With `Prefer: respond-async`: 202 and the job."""
    return _run_multipart("compose", form)
