"""Content-addressed image files: `<root>/<sha[:2]>/<sha>.png`.

The same picture is stored once, however many owners and messages use it
(each owner has their own database row). Writes go to a temporary file first
and are renamed into place, so a reader never sees a half-written image and a
crash leaves no torn file behind.
"""

from __future__ import annotations

import hashlib
import os
import tempfile
from pathlib import Path

EXTENSIONS = {"image/png": "png", "image/webp": "webp", "image/jpeg": "jpg"}


class ImageStore:
    def __init__(self, root: str | os.PathLike) -> None:
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)

    def path_for(self, sha256: str, mime: str = "image/png", variant: str = "") -> Path:
        suffix = f".{variant}" if variant else ""
        return self.root / sha256[:2] / f"{sha256}{suffix}.{EXTENSIONS.get(mime, 'bin')}"

    def put(self, data: bytes, mime: str = "image/png", variant: str = "", sha256: str = "") -> str:
        sha256 = sha256 or hashlib.sha256(data).hexdigest()
        target = self.path_for(sha256, mime, variant)
        if target.exists():
            return sha256
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        return sha256

    def get(self, sha256: str, mime: str = "image/png", variant: str = "") -> bytes | None:
        try:
            return self.path_for(sha256, mime, variant).read_bytes()
        except FileNotFoundError:
            return None

    def exists(self, sha256: str, mime: str = "image/png", variant: str = "") -> bool:
        return self.path_for(sha256, mime, variant).exists()

    def delete(self, sha256: str) -> None:
        folder = self.root / sha256[:2]
        if not folder.exists():
            return
        for path in folder.glob(f"{sha256}*"):
            path.unlink(missing_ok=True)
