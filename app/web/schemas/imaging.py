"""Request and response models of the imaging API (/v1/*)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from flask_openapi3 import FileStorage
from pydantic import BeforeValidator, ConfigDict, Field

from app.web.schemas.common import MAX_ID, MessageOut, Schema

INT32 = 2**31 - 1


def _clamp_candidates(value: Any) -> Any:
    """`candidate_count` is clamped to 1..6, not refused (seed behaviour)."""
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float) and value == value:  # not NaN
        return min(6, max(1, int(value)))
    return value


def _as_text(value: Any) -> Any:
    # flask-openapi3 JSON-decodes form fields; a prompt such as "1984" or
    # "true" arrives as a number or bool and must be text again.
    if value is None or isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False)


def _id_list(value: Any) -> Any:
    """source_image_ids: repeated fields, a JSON list, or "1,2,3"."""
    if value is None:
        return []
    if isinstance(value, int | str):
        value = [value]
    items: list = []
    for item in value:
        if isinstance(item, str):
            items += [part.strip() for part in item.split(",") if part.strip()]
        elif isinstance(item, list):
            items += item
        else:
            items.append(item)
    return items


Prompt = Annotated[str, BeforeValidator(_as_text), Field(min_length=1, max_length=20000)]
OptionalText = Annotated[str | None, BeforeValidator(_as_text)]
CandidateCount = Annotated[int | None, BeforeValidator(_clamp_candidates)]
ImageIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], BeforeValidator(_id_list)]


class GenerationOptions(Schema):
    model_config = ConfigDict(extra="ignore")

    model: OptionalText = Field(None, max_length=100, description="Model id (see /v1/models)")
    temperature: float | None = Field(None, ge=0, le=2)
    top_p: float | None = Field(None, ge=0, le=1)
    top_k: int | None = Field(None, ge=1, le=1000)
    candidate_count: CandidateCount = Field(None, description="Images to make; clamped to 1..6")
    seed: int | None = Field(None, ge=-INT32 - 1, le=INT32)
    max_output_tokens: int | None = Field(None, ge=1, le=65536)
    aspect_ratio: OptionalText = Field(None, max_length=10, examples=["1:1", "16:9"])
    image_size: OptionalText = Field(None, max_length=10, examples=["1K", "2K"])
    conv_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Store the turn in this conversation (logged in)"
    )


class GenerateBody(GenerationOptions):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"example": {"prompt": "a yellow banana wearing sunglasses"}},
    )

    prompt: Prompt


class ImageForm(GenerationOptions):
    prompt: Prompt
    files: list[FileStorage] = Field(default_factory=list, description="Images to edit/compose")
    source_image_ids: ImageIds = Field(
        default_factory=list, description="Stored images (earlier results or inputs) to use"
    )


class ImagingOut(Schema):
    images: list[str] = Field(description="Base64 PNG images")
    texts: list[str]
    image_ids: list[int] = Field(default_factory=list, description="When stored")
    model: str
    finish_reasons: list[str] = []
    usage: dict[str, int] = {}
    warnings: list[dict] = []
    duration_ms: int = 0
    conversation_id: int | None = None
    user_message: MessageOut | None = None
    message: MessageOut | None = None


class ModelOut(Schema):
    id: str
    label: str
    default: bool
    max_input_images: int
    aspect_ratios: list[str]
    image_sizes: list[str]


class ModelsOut(Schema):
    provider: str
    default_model: str
    models: list[ModelOut]
