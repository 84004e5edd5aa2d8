"""The image models this server offers, and what each accepts."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field

from app.errors import InvalidInput
from app.i18n import _l
from app.services.genai.contracts import GenerationOptions

STANDARD_RATIOS = ("1:1", "2:3", "3:2", "3:4", "4:3", "4:5", "5:4", "9:16", "16:9", "21:9")
DEFAULT_MODEL_ID = "gemini-3.1-flash-image"


@dataclass(frozen=True)
class ModelInfo:
    id: str
    label: str
    max_input_images: int
    aspect_ratios: tuple[str, ...] = STANDARD_RATIOS
    image_sizes: tuple[str, ...] = ()
    default: bool = False

    def as_dict(self) -> dict:
        data = asdict(self)
        data["aspect_ratios"] = list(self.aspect_ratios)
        data["image_sizes"] = list(self.image_sizes)
        return data


BUILT_IN = (
    ModelInfo(
        DEFAULT_MODEL_ID,
        "Nano Banana 2",
        max_input_images=14,
        aspect_ratios=(*STANDARD_RATIOS, "1:4", "4:1", "1:8", "8:1"),
        image_sizes=("1K", "2K", "4K"),
    ),
    # The first Nano Banana renders at one size only: no image_size choice.
    ModelInfo("gemini-2.5-flash-image", "Nano Banana", max_input_images=3),
    ModelInfo(
        "gemini-3-pro-image",
        "Nano Banana Pro",
        max_input_images=14,
        image_sizes=("1K", "2K", "4K"),
    ),
)


@dataclass
class Catalog:
    models: list[ModelInfo] = field(default_factory=list)

    @classmethod
    def from_config(cls, config) -> Catalog:
        known = {model.id: model for model in BUILT_IN}
        ids = list(config.get("GENAI_MODELS") or []) or [model.id for model in BUILT_IN]
        default_id = config.get("DEFAULT_MODEL") or (
            DEFAULT_MODEL_ID if DEFAULT_MODEL_ID in ids else ids[0]
        )
        if default_id not in ids:
            ids.insert(0, default_id)
        models = []
        for model_id in ids:
            # A model we don't know gets conservative capabilities; the
            # upstream has the last word on anything beyond them.
            base = known.get(model_id) or ModelInfo(model_id, model_id, max_input_images=3)
            models.append(
                ModelInfo(
                    base.id,
                    base.label,
                    base.max_input_images,
                    base.aspect_ratios,
                    base.image_sizes,
                    default=model_id == default_id,
                )
            )
        return cls(models)

    @property
    def default(self) -> ModelInfo:
        return next(model for model in self.models if model.default)

    def resolve(self, model_id: str | None) -> ModelInfo:
        if not model_id:
            return self.default
        for model in self.models:
            if model.id == model_id:
                return model
        valid = ", ".join(model.id for model in self.models)
        raise InvalidInput(
            _l(
                "Unknown model '%(model_id)s'. Valid models: %(valid)s.",
                model_id=model_id,
                valid=valid,
            ),
            code="unknown_model",
            extra={"valid_models": [model.id for model in self.models]},
        )

    def check_options(self, model: ModelInfo, options: GenerationOptions, *, images: int) -> None:
        """Refuse what this model cannot do, before the upstream is called."""
        aspect_ratio, image_size = options.aspect_ratio, options.image_size
        if aspect_ratio and aspect_ratio not in model.aspect_ratios:
            valid = ", ".join(model.aspect_ratios)
            raise InvalidInput(
                _l(
                    "%(model_id)s does not support aspect ratio %(aspect_ratio)s. Valid: "
                    "%(valid)s.",
                    model_id=model.id,
                    aspect_ratio=aspect_ratio,
                    valid=valid,
                ),
                code="invalid_aspect_ratio",
            )
        if image_size and not model.image_sizes:
            # Nano Banana (2.5) has one output size: say so, not "Valid: ".
            raise InvalidInput(
                _l(
                    "%(model_id)s has a single image size; leave image_size out.", model_id=model.id
                ),
                code="invalid_image_size",
            )
        if image_size and image_size not in model.image_sizes:
            valid = ", ".join(model.image_sizes)
            raise InvalidInput(
                _l(
                    "%(model_id)s does not support image size %(image_size)s. Valid: %(valid)s.",
                    model_id=model.id,
                    image_size=image_size,
                    valid=valid,
                ),
                code="invalid_image_size",
            )
        if images > model.max_input_images:
            raise InvalidInput(
                _l(
                    "%(model_id)s accepts at most %(max_input_images)s input images; got "
                    "%(images)s.",
                    model_id=model.id,
                    max_input_images=model.max_input_images,
                    images=images,
                ),
                code="too_many_images",
            )
