"""Serve the fake until killed: ``python -m tests.fake_gemini --port 8765``.

Prints one JSON line, ``{"url": ...}``, once the port is bound. Standard
library plus Pillow only, so it runs where pytest is not installed.
"""

from __future__ import annotations

import argparse
import json

from tests.fake_gemini.server import FakeGemini


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(
        description="Serve a fake Gemini generateContent API until killed."
    )
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument(
        "--image-kb",
        type=int,
        default=None,
        help="default image size (random noise PNG)",
    )
    parser.add_argument("--image-size", default="64x64", help="WIDTHxHEIGHT of the gradient image")
    parser.add_argument("--api-key", default=None, help="reject any other x-goog-api-key")
    args = parser.parse_args(argv)
    width, height = (int(n) for n in args.image_size.lower().split("x"))
    fake = FakeGemini(
        host=args.host,
        port=args.port,
        latency=args.latency,
        image_size=(width, height),
        image_kb=args.image_kb,
        api_key=args.api_key,
    )
    fake.start()
    # One line on stdout so a parent process knows the port is bound.
    print(json.dumps({"url": fake.url}), flush=True)
    fake.serve_forever()


if __name__ == "__main__":
    main()
