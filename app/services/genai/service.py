"""GenAIService (filled in by the imaging work)."""

from __future__ import annotations


class GenAIService:
    def __init__(self, provider_name: str) -> None:
        self.provider_name = provider_name

    @classmethod
    def from_config(cls, config) -> GenAIService:
        forced = (config.get("GENAI_PROVIDER") or "").lower()
        name = forced or ("gemini" if config.get("GOOGLE_API_KEY") else "offline")
        return cls(name)

    def close(self) -> None:
        pass
