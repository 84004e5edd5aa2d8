"""What an upstream call costs, and which calls cost anything: the billing
rule lives here and nowhere else.

The rule: an attempt is billed when the upstream answered it with a 200
(with images, or blocked, empty or unreadable all the same); it costs the
images it returned, priced per output image by model and requested size,
plus its prompt tokens at the model's input price. An error answer (4xx,
5xx), a timeout or a call that never reached the upstream costs nothing, and
so does the offline engine.

Default prices (USD, Gemini Developer API, standard tier, as published on
ai.google.dev/gemini-api/docs/pricing and quoted by third-party price guides
read 2026-03 to 2026-10; the coordinator's figures for 2026-12):
gemini-2.5-flash-image $0.039 per image (1290 output tokens at $30/M);
gemini-3-pro-image $0.134 at 1K and 2K, $0.24 at 4K; gemini-3.1-flash-image
$0.067 at 1K, $0.101 at 2K, $0.151 at 4K ($60/M output image tokens). A model
the table doesn't know is priced as the dearest image the table knows, so a
budget is never undercounted. PRICE_TABLE (JSON, same shape as PRICES) is
merged over these per model, e.g.
``{"gemini-3-pro-image": {"image": {"4K": 0.2}}, "my-relay-model": {"image":
{"default": 0.05}, "input_per_million": 0}}``.
"""

from __future__ import annotations

import functools
import json
from decimal import ROUND_HALF_UP, Decimal

from flask import current_app, has_app_context

# Providers that cost nothing.
FREE_PROVIDERS = frozenset({"offline"})

MICRO = Decimal("0.000001")

# "default" is the price when no size was asked (the model's own default,
# 1K for the sized models) and for a size the table doesn't list.
PRICES: dict[str, dict] = {
    "gemini-2.5-flash-image": {"image": {"default": "0.039"}, "input_per_million": "0.30"},
    "gemini-3-pro-image": {
        "image": {"default": "0.134", "1K": "0.134", "2K": "0.134", "4K": "0.24"},
        "input_per_million": "2.00",
    },
    "gemini-3.1-flash-image": {
        "image": {"default": "0.067", "1K": "0.067", "2K": "0.101", "4K": "0.151"},
        "input_per_million": "0.50",
    },
}


def price_table() -> dict[str, dict]:
    """The defaults with PRICE_TABLE merged over them, as Decimals."""
    raw = current_app.config.get("PRICE_TABLE") if has_app_context() else None
    if raw is None or isinstance(raw, str):
        return _table_for(raw)
    return _merged(_parse_override(raw))


@functools.cache
def _table_for(raw: str | None) -> dict[str, dict]:
    return _merged(_parse_override(raw))


def _parse_override(raw) -> dict:
    if not raw:
        return {}
    table = json.loads(raw) if isinstance(raw, str) else raw
    if not isinstance(table, dict):
        raise ValueError("PRICE_TABLE must be a JSON object of model id -> prices")
    return table


def _merged(override: dict) -> dict[str, dict]:
    table: dict[str, dict] = {}
    for model in {*PRICES, *override}:
        base = PRICES.get(model, {})
        extra = override.get(model) or {}
        images = {**base.get("image", {}), **(extra.get("image") or {})}
        table[model] = {
            "image": {size: Decimal(str(price)) for size, price in images.items()},
            "input_per_million": Decimal(
                str(extra.get("input_per_million", base.get("input_per_million", 0)))
            ),
        }
    return table


def validate(config) -> None:
    """Refuse a malformed PRICE_TABLE at start rather than at the first image."""
    _merged(_parse_override(config.get("PRICE_TABLE")))


def image_price(model: str, image_size: str | None, table: dict | None = None) -> Decimal:
    table = table if table is not None else price_table()
    prices = table.get(model)
    if prices is None or not prices["image"]:
        return max(
            (price for entry in table.values() for price in entry["image"].values()),
            default=Decimal(0),
        )
    images = prices["image"]
    return images.get(image_size or "default", images.get("default", max(images.values())))


def estimate(model: str, image_size: str | None, images: int) -> Decimal:
    """What `images` images would cost: what a reservation holds."""
    return _round(image_price(model, image_size) * images)


def is_billed(provider: str, answered: bool) -> bool:
    """The billing rule: the upstream answered with a 200 (the provider says
    so: app/services/genai/service.py Attempt.answered), and it isn't free."""
    return answered and provider not in FREE_PROVIDERS


def cost_of(model: str, image_size: str | None, images: int, usage_tokens: dict | None) -> Decimal:
    """The cost of one billed attempt: its images and its prompt tokens."""
    table = price_table()
    prompt_tokens = int((usage_tokens or {}).get("prompt_tokens") or 0)
    input_price = table.get(model, {}).get("input_per_million", Decimal(0))
    cost = image_price(model, image_size, table) * images + input_price * prompt_tokens / 10**6
    return _round(cost)


def to_micro(amount: Decimal) -> int:
    return int((amount / MICRO).to_integral_value(ROUND_HALF_UP))


def from_micro(micro: int) -> Decimal:
    return (Decimal(micro) * MICRO).quantize(MICRO)


def _round(amount: Decimal) -> Decimal:
    return amount.quantize(MICRO, ROUND_HALF_UP)
