"""Where do images live when several app processes run? Measures the two
candidates with the same 1 MB PNGs:

- files: the app's ImageStore (content-addressed files; temp file, fsync,
  os.replace) in a folder every process mounts;
- database: one `bytea` row per image (SQLAlchemy LargeBinary) in PostgreSQL,
  inserted with ON CONFLICT DO NOTHING and committed, read back by hash.

    .venv/bin/python bench/image_store.py
    .venv/bin/python bench/image_store.py --count 100 --threads 1,4 --dir /mnt/nas/bench

Writes happen in a fresh folder (under --dir, default the system temp folder)
and a fresh PostgreSQL database (created on --admin-url's server, dropped at
the end). Reads are warm (the OS page cache and PostgreSQL's shared buffers
hold what was just written), which is the common case: a picture is looked
at right after it is made. Prints one table and, with --json, the figures.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import random
import shutil
import statistics
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from PIL import Image
from sqlalchemy import (
    Column,
    LargeBinary,
    MetaData,
    String,
    Table,
    create_engine,
    select,
    text,
)
from sqlalchemy.dialects.postgresql import insert

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from app.services.image_files import ImageStore

metadata = MetaData()
blobs = Table(
    "image_blobs",
    metadata,
    Column("sha256", String(64), primary_key=True),
    Column("data", LargeBinary, nullable=False),
)


def noise_png(seed: int, size_kb: int) -> bytes:
    """A PNG of random pixels: it does not compress, like a detailed picture."""
    side = int((size_kb * 1024 / 3) ** 0.5)
    image = Image.frombytes("RGB", (side, side), random.Random(seed).randbytes(side * side * 3))
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", compress_level=1)
    return buffer.getvalue()


class FileBackend:
    name = "files (ImageStore)"

    def __init__(self, root: Path) -> None:
        self.store = ImageStore(root)

    def put(self, data: bytes, sha: str) -> None:
        self.store.put(data, "image/png", sha256=sha)

    def get(self, sha: str) -> bytes:
        data = self.store.get(sha, "image/png")
        assert data is not None
        return data


class PostgresBackend:
    name = "PostgreSQL bytea"

    def __init__(self, url: str) -> None:
        self.engine = create_engine(url, pool_size=16)
        metadata.create_all(self.engine)

    def put(self, data: bytes, sha: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(insert(blobs).values(sha256=sha, data=data).on_conflict_do_nothing())

    def get(self, sha: str) -> bytes:
        with self.engine.connect() as conn:
            data = conn.execute(select(blobs.c.data).where(blobs.c.sha256 == sha)).scalar_one()
        return bytes(data)

    def close(self) -> None:
        self.engine.dispose()


def timed(function, items, threads: int) -> tuple[list[float], float]:
    """Per-item latencies (s) and the wall time of the whole batch."""

    def one(item):
        started = time.perf_counter()
        function(*item)
        return time.perf_counter() - started

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        latencies = list(pool.map(one, items))
    return latencies, time.perf_counter() - started


def measure(backend, images: list[tuple[bytes, str]], threads: int) -> dict:
    total_mb = sum(len(data) for data, _ in images) / 1e6
    write_lat, write_wall = timed(backend.put, images, threads)
    read_lat, read_wall = timed(
        lambda sha: backend.get(sha), [(sha,) for _, sha in images], threads
    )
    for data, sha in images[:3]:
        assert backend.get(sha) == data

    def pct(values: list[float], q: float) -> float:
        ordered = sorted(values)
        return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))] * 1000

    return {
        "backend": backend.name,
        "threads": threads,
        "write_p50_ms": round(statistics.median(write_lat) * 1000, 2),
        "write_p95_ms": round(pct(write_lat, 0.95), 2),
        "write_mb_s": round(total_mb / write_wall, 1),
        "read_p50_ms": round(statistics.median(read_lat) * 1000, 2),
        "read_p95_ms": round(pct(read_lat, 0.95), 2),
        "read_mb_s": round(total_mb / read_wall, 1),
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=60, help="images per run")
    parser.add_argument("--size-kb", type=int, default=1024)
    parser.add_argument("--threads", default="1,4", help="comma-separated thread counts")
    parser.add_argument("--dir", default=None, help="where the file store goes (shared mount)")
    parser.add_argument(
        "--admin-url",
        default="postgresql+psycopg://postgres@127.0.0.1/postgres",
        help="a PostgreSQL server where a scratch database may be created",
    )
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    args = parser.parse_args(argv)
    thread_counts = [int(n) for n in args.threads.split(",")]

    # Distinct pictures per run, so no write is a content-addressed no-op.
    runs = {
        threads: [
            (data, hashlib.sha256(data).hexdigest())
            for data in (noise_png(threads * 100_000 + n, args.size_kb) for n in range(args.count))
        ]
        for threads in thread_counts
    }
    image_kb = round(statistics.mean(len(d) for d, _ in runs[thread_counts[0]]) / 1024)

    folder = Path(tempfile.mkdtemp(prefix="nb-bench-images-", dir=args.dir))
    db_name = f"nb_bench_{uuid.uuid4().hex[:10]}"
    admin = create_engine(args.admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{db_name}"'))
    database = PostgresBackend(admin.url.set(database=db_name))
    results = []
    try:
        for threads in thread_counts:
            files = FileBackend(folder / f"t{threads}")
            results.append(measure(files, runs[threads], threads))
            results.append(measure(database, runs[threads], threads))
        with database.engine.connect() as conn:
            table_mb = (
                conn.execute(text("SELECT pg_total_relation_size('image_blobs')")).scalar() / 1e6
            )
    finally:
        database.close()
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{db_name}" WITH (FORCE)'))
        admin.dispose()
        shutil.rmtree(folder, ignore_errors=True)

    stored_mb = sum(len(d) for run in runs.values() for d, _ in run) / 1e6
    print(f"{args.count} PNGs of ~{image_kb} KB per run; file store under {folder.parent}")
    header = (
        f"{'backend':<20} {'thr':>3} {'write p50':>10} {'p95':>8} {'MB/s':>7}"
        f" {'read p50':>9} {'p95':>8} {'MB/s':>7}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r['backend']:<20} {r['threads']:>3} {r['write_p50_ms']:>8.2f}ms"
            f" {r['write_p95_ms']:>6.2f}ms {r['write_mb_s']:>7.1f}"
            f" {r['read_p50_ms']:>7.2f}ms {r['read_p95_ms']:>6.2f}ms {r['read_mb_s']:>7.1f}"
        )
    print(f"PostgreSQL table size for {stored_mb:.0f} MB of PNGs: {table_mb:.0f} MB")
    if args.json:
        print(json.dumps({"image_kb": image_kb, "results": results, "table_mb": table_mb}))


if __name__ == "__main__":
    main()
