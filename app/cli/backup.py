"""`flask backup`: one consistent snapshot of everything an install keeps —
the database, the image files and the generated secret key.

Sessions are left out (restoring means logging in again), and the snapshot,
zip or folder, is readable by its owner only: it holds the secret key and
the password hashes.

The snapshot is laid out like the data folder (`app.db`, `images/`,
`secret_key`), so restoring is unpacking it into an empty DATA_DIR; see
README → Backups. SQLite is copied with its online backup API, which is safe
while the server runs (WAL included). PostgreSQL is dumped with `pg_dump`
when it is installed; otherwise the command to run is printed and the exit
status says the database is missing.
"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import tempfile
import zipfile
from datetime import UTC, datetime
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext
from sqlalchemy import text
from sqlalchemy.engine import URL

from app import __version__, private_files
from app.extensions import db

SQLITE_NAME = "app.db"
PG_DUMP_NAME = "database.pgdump"
SECRET_NAME = "secret_key"
IMAGES_NAME = "images"
MANIFEST_NAME = "backup-manifest.json"
COUNTED_TABLES = ("users", "conversations", "messages", "images", "api_tokens")
# Live logins are not something to restore: left out of every snapshot.
LEFT_OUT_TABLES = ("sessions",)


class BackupError(Exception):
    pass


def snapshot_name(now: datetime | None = None) -> str:
    return "nano-banana-" + (now or datetime.now(UTC)).strftime("%Y%m%d-%H%M%S")


def sqlite_snapshot(source: Path, target: Path) -> None:
    """Copy a live SQLite database page by page inside one read transaction:
    a consistent picture even while the server writes. The copy is switched
    out of WAL so it is one self-contained file, and emptied of the tables
    left out, then vacuumed so no deleted row lingers in a free page."""
    if not source.exists():
        raise BackupError(f"database file not found: {source}")
    with private_files.open_new(target):
        pass  # created 0600 before SQLite would create it 0644
    src = sqlite3.connect(source)
    dst = sqlite3.connect(target, isolation_level=None)
    try:
        src.backup(dst)
        dst.execute("PRAGMA journal_mode=DELETE")
        for table in LEFT_OUT_TABLES:
            dst.execute(f"DELETE FROM {table}")
        dst.execute("VACUUM")
        result = dst.execute("PRAGMA integrity_check").fetchone()[0]
        if result != "ok":
            raise BackupError(f"the copied database fails its integrity check: {result}")
    finally:
        dst.close()
        src.close()


def pg_dump(url: URL, target: Path) -> None:
    """Dump with pg_dump in its custom format (restore with pg_restore). The
    password goes through the environment, never the command line."""
    executable = shutil.which("pg_dump")
    if executable is None:
        raise BackupError("pg_dump not found")
    env = dict(os.environ)
    for variable, value in (
        ("PGHOST", url.host),
        ("PGPORT", url.port),
        ("PGUSER", url.username),
        ("PGPASSWORD", url.password),
        ("PGDATABASE", url.database),
    ):
        if value is not None:
            env[variable] = str(value)
    left_out = [f"--exclude-table-data={table}" for table in LEFT_OUT_TABLES]
    result = subprocess.run(
        [executable, "--format=custom", "--no-owner", *left_out, f"--file={target}"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    if result.returncode != 0:
        raise BackupError(f"pg_dump failed: {result.stderr.strip()}")


def pg_dump_hint(url: URL) -> str:
    safe = url.set(drivername="postgresql", password="***" if url.password else None)
    left_out = "".join(f"--exclude-table-data={table} " for table in LEFT_OUT_TABLES)
    return (
        f"pg_dump --format=custom --no-owner {left_out}--file={PG_DUMP_NAME} "
        f'"{safe.render_as_string(hide_password=False)}"'
    )


def copy_images(source: Path, target: Path) -> int:
    """Copy the content-addressed image files; skip half-written temporaries."""
    count = 0
    if not source.is_dir():
        return count
    for path in sorted(source.rglob("*")):
        if not path.is_file() or path.name.startswith(".tmp-"):
            continue
        destination = target / path.relative_to(source)
        destination.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(path, destination)
        count += 1
    return count


def _row_counts() -> dict[str, int]:
    counts = {}
    for table in COUNTED_TABLES:
        counts[table] = db.session.execute(text(f"SELECT COUNT(*) FROM {table}")).scalar_one()
    db.session.rollback()
    return counts


def _schema_revision() -> str | None:
    try:
        revision = db.session.execute(text("SELECT version_num FROM alembic_version")).scalar()
    except Exception:  # no migrations applied yet
        revision = None
    db.session.rollback()
    return revision


def write_snapshot(staging: Path) -> dict:
    """Fill `staging` with the snapshot of the current app; return its manifest."""
    config = current_app.config
    url = db.engine.url
    manifest: dict = {
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "app_version": __version__,
        "database": url.get_backend_name(),
        "schema_revision": _schema_revision(),
        "rows": _row_counts(),
        "left_out": list(LEFT_OUT_TABLES),
        "warnings": [],
    }

    # The database first: image files are written before the rows that name
    # them, so every image the snapshot's rows name is already on disk.
    if url.get_backend_name() == "sqlite":
        if not url.database or url.database == ":memory:":
            raise BackupError("an in-memory SQLite database can't be backed up")
        sqlite_snapshot(Path(url.database), staging / SQLITE_NAME)
        manifest["database_file"] = SQLITE_NAME
    elif url.get_backend_name() == "postgresql":
        try:
            pg_dump(url, staging / PG_DUMP_NAME)
            manifest["database_file"] = PG_DUMP_NAME
        except BackupError as error:
            manifest["database_file"] = None
            manifest["warnings"].append(
                f"{error}. The database is NOT in this backup; dump it with: {pg_dump_hint(url)}"
            )
    else:
        manifest["database_file"] = None
        manifest["warnings"].append(
            f"{url.get_backend_name()} databases are not backed up by this command"
        )

    manifest["images"] = copy_images(Path(config["IMAGE_DIR"]), staging / IMAGES_NAME)

    secret_file = Path(config["DATA_DIR"]) / SECRET_NAME
    if secret_file.exists():
        shutil.copy2(secret_file, staging / SECRET_NAME)
        manifest["secret_key"] = SECRET_NAME
    else:
        # SECRET_KEY comes from the environment: keep it wherever that is set.
        manifest["secret_key"] = None

    (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2), encoding="utf-8")
    # Modes travel into the zip too (`unzip` restores them).
    private_files.tighten_tree(staging)
    return manifest


def _zip_folder(folder: Path, target: Path) -> None:
    partial = target.with_name(target.name + ".partial")
    partial.unlink(missing_ok=True)  # left by an interrupted run
    with private_files.open_new(partial) as file, zipfile.ZipFile(file, "w") as archive:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                # PNG/WEBP are compressed already; the database is not.
                method = zipfile.ZIP_STORED if path.suffix in {".png", ".webp", ".jpg"} else None
                archive.write(
                    path,
                    path.relative_to(folder).as_posix(),
                    compress_type=method or zipfile.ZIP_DEFLATED,
                )
    os.replace(partial, target)


def resolve_target(output: str | None, as_folder: bool) -> Path:
    """`--output` is a .zip file name, or a folder to put a timestamped
    snapshot in (default: DATA_DIR/backups)."""
    if output and output.lower().endswith(".zip"):
        return Path(output)
    folder = Path(output) if output else Path(current_app.config["DATA_DIR"]) / "backups"
    return folder / (snapshot_name() + ("" if as_folder else ".zip"))


def create_backup(output: str | None = None, as_folder: bool = False) -> tuple[Path, dict]:
    target = resolve_target(output, as_folder)
    if target.exists():
        raise BackupError(f"{target} already exists")
    if output:
        # A folder someone named keeps the mode it has; one we make is private.
        target.parent.mkdir(mode=private_files.OWNER_ONLY_DIR, parents=True, exist_ok=True)
    else:
        private_files.make_dir(target.parent)
    if as_folder and target.suffix.lower() != ".zip":
        staging = target.with_name(target.name + ".partial")
        staging.mkdir(mode=private_files.OWNER_ONLY_DIR)
        try:
            manifest = write_snapshot(staging)
            os.replace(staging, target)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
        return target, manifest
    with tempfile.TemporaryDirectory(prefix="nb-backup-", dir=target.parent) as staging:
        manifest = write_snapshot(Path(staging))
        _zip_folder(Path(staging), target)
    return target, manifest


@click.command("backup")
@click.option(
    "--output",
    "-o",
    help="A .zip file, or a folder for a timestamped snapshot (default: DATA_DIR/backups).",
)
@click.option("--folder", "as_folder", is_flag=True, help="Write a folder instead of a .zip.")
@with_appcontext
def backup_command(output: str | None, as_folder: bool) -> None:
    """Snapshot the database, images and secret key (safe while serving)."""
    try:
        target, manifest = create_backup(output, as_folder)
    except BackupError as error:
        raise click.ClickException(str(error)) from None
    rows = ", ".join(f"{count} {table}" for table, count in manifest["rows"].items())
    click.echo(f"backup written to {target}")
    click.echo(f"  database: {manifest['database_file'] or 'NOT INCLUDED'} ({rows})")
    click.echo(f"  images: {manifest['images']} files")
    click.echo(f"  secret key: {'included' if manifest['secret_key'] else 'set by SECRET_KEY'}")
    click.echo("  sessions: left out (after a restore, everyone logs in again)")
    for warning in manifest["warnings"]:
        click.echo(f"warning: {warning}", err=True)
    if manifest["database_file"] is None:
        click.get_current_context().exit(1)
