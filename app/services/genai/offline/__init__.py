"""The offline engine: a Provider that needs no API key and no network.

``generate`` paints a landscape from the colours the prompt names and the
seed (painter); ``edit`` applies the operations the prompt names, in the order
it names them, in English or Chinese (edit_words are their names, edit_parser
finds them, edit_ops does them, editor runs them within bounds); ``compose``
tiles, blends or moves the palette between the inputs (composer). The same request always gives the same
bytes: every random choice comes from a SHA-256 of the request, never from the
global generator or the clock.
"""

from __future__ import annotations

from collections.abc import Callable

from app.errors import InvalidInput
from app.i18n import _l, translate_or_both
from app.services import image_codec
from app.services.genai.contracts import GenerationRequest, ProviderImage, ProviderResult
from app.services.genai.offline.colours import COLOURS, NamedColour
from app.services.genai.offline.composer import compose
from app.services.genai.offline.edit_ops import EditOperation, PixelBudget
from app.services.genai.offline.edit_parser import ReadEdit, parse_edit_operations, read_edit
from app.services.genai.offline.editor import (
    EDIT_TIME_BUDGET_S,
    MAX_EDIT_OPERATIONS,
    MAX_EDIT_PIXELS,
    MAX_OUTPUT_SIDE,
    edit,
)
from app.services.genai.offline.painter import (
    ASPECT_RATIOS,
    IMAGE_SIZES,
    OFFLINE_MAX_SIDE,
    generate,
)

__all__ = [
    "ASPECT_RATIOS",
    "COLOURS",
    "EDIT_TIME_BUDGET_S",
    "IMAGE_SIZES",
    "MAX_EDIT_OPERATIONS",
    "MAX_EDIT_PIXELS",
    "MAX_OUTPUT_SIDE",
    "OFFLINE_MAX_SIDE",
    "EditOperation",
    "NamedColour",
    "OfflineProvider",
    "PixelBudget",
    "ReadEdit",
    "parse_edit_operations",
    "read_edit",
]


class OfflineProvider:
    name = "offline"

    def __init__(self, *, edit_time_budget_s: float = EDIT_TIME_BUDGET_S) -> None:
        self.edit_time_budget_s = edit_time_budget_s

    def generate(
        self,
        request: GenerationRequest,
        before_send: Callable[[], None] | None = None,
        after_send: Callable[[], None] | None = None,
    ) -> ProviderResult:
        # The gate paces the offline engine too, so limits behave the same
        # with and without a key; its "request" is on the wire at once.
        if before_send is not None:
            before_send()
        if after_send is not None:
            after_send()
        if request.kind == "generate":
            picture, reply = generate(request)
        elif request.kind == "edit":
            picture, reply = edit(request, time_budget_s=self.edit_time_budget_s)
        elif request.kind == "compose":
            picture, reply = compose(request)
        else:
            raise InvalidInput(_l("Unknown request kind %(kind)r.", kind=request.kind))
        png = image_codec.encode_png(picture)
        prompt_tokens = len(request.prompt) // 4 + 1
        return ProviderResult(
            images=[ProviderImage(data=png.data, mime=png.mime)],
            # Both languages when the caller named none: a script that never
            # sent Accept-Language still reads either half.
            texts=[translate_or_both(reply, request.language)],
            finish_reason="STOP",
            usage={
                "prompt_tokens": prompt_tokens,
                "output_tokens": 0,
                "total_tokens": prompt_tokens,
            },
            model=request.model,
        )

    def close(self) -> None:
        """Nothing to release: no client, no connection."""
