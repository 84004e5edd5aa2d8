"""Generation, editing and composition."""

from __future__ import annotations

from flask_openapi3 import APIBlueprint, Tag

bp = APIBlueprint("imaging", __name__, abp_tags=[Tag(name="imaging")])
