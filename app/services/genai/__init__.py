"""The GenAI service: one per app, in app.extensions["genai"]."""

from __future__ import annotations

from flask import Flask


def init_genai(app: Flask) -> None:
    from app.services.genai.service import GenAIService

    service = GenAIService.from_config(app.config)
    app.extensions["genai"] = service
