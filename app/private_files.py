"""Files only the install's own user may read: the data folder, the SQLite
database, the secret key and backups. They hold password hashes, sessions
and the key that signs CSRF tokens.

Each is created with its final mode (a file is never readable by others,
not even for a moment) and an older install's are tightened at start. POSIX
only: on Windows the folder's ACL decides.
"""

from __future__ import annotations

import os
from pathlib import Path

OWNER_ONLY_DIR, OWNER_ONLY_FILE = 0o700, 0o600


def make_dir(path: Path) -> Path:
    """Create a folder 0700 (parents as the umask says), or tighten one."""
    path.mkdir(mode=OWNER_ONLY_DIR, parents=True, exist_ok=True)
    tighten(path, OWNER_ONLY_DIR)
    return path


def open_new(path: Path, mode: str = "wb"):
    """A new file, created 0600; FileExistsError if it exists."""
    descriptor = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, OWNER_ONLY_FILE)
    return os.fdopen(descriptor, mode)


def tighten(path: Path, mode: int = OWNER_ONLY_FILE) -> None:
    """Take group and other access away from an existing file or folder; one
    we don't own (a mounted volume, say) is left as it is."""
    if os.name != "posix":
        return
    try:
        if path.stat().st_mode & 0o077:
            os.chmod(path, mode)
    except (FileNotFoundError, PermissionError):
        pass


def tighten_tree(root: Path) -> None:
    """Every folder 0700 and every file 0600 under `root` (a backup folder)."""
    tighten(root, OWNER_ONLY_DIR)
    for path in root.rglob("*"):
        tighten(path, OWNER_ONLY_DIR if path.is_dir() else OWNER_ONLY_FILE)
