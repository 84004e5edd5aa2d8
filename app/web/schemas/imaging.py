"""Request and response models of the imaging API (/v1/*)."""

from __future__ import annotations

import json
from typing import Annotated, Any

from flask_openapi3 import FileStorage
from pydantic import BeforeValidator, ConfigDict, Field, model_validator

from app.services.genai.contracts import GenerationOptions
from app.web.schemas.common import MAX_ID, MessageOut, Schema


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
ImageIds = Annotated[list[Annotated[int, Field(ge=1, le=MAX_ID)]], BeforeValidator(_id_list)]

# The options typed as text; a form's JSON-decoded "16" must stay "16".
TEXT_OPTIONS = frozenset(
    name for name, info in GenerationOptions.model_fields.items() if info.annotation == str | None
)


class OptionFields(Schema, GenerationOptions):
    """The generation options (defined once, in GenerationOptions) and what
    every imaging request takes beside them."""

    model_config = ConfigDict(extra="ignore")

    conv_id: int | None = Field(
        None, ge=1, le=MAX_ID, description="Store the turn in this conversation (logged in)"
    )
    retry_of: int | None = Field(
        None,
        ge=1,
        le=MAX_ID,
        description="A failed reply of conv_id this request tries again: the new turn replaces "
        "that failed one (an error answer names it as `message_id`)",
    )

    @model_validator(mode="before")
    @classmethod
    def _text_options_as_text(cls, data: Any) -> Any:
        if not isinstance(data, dict):
            return data
        return {name: _as_text(v) if name in TEXT_OPTIONS else v for name, v in data.items()}

    def options(self) -> GenerationOptions:
        """The options alone, without the rest of the request."""
        return GenerationOptions.model_validate(
            self.model_dump(include=set(GenerationOptions.model_fields))
        )


class GenerateBody(OptionFields):
    model_config = ConfigDict(
        extra="ignore",
        json_schema_extra={"example": {"prompt": "a yellow banana wearing sunglasses"}},
    )

    prompt: Prompt


class ImageForm(OptionFields):
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
