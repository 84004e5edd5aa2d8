"""The offline engine against hostile edit prompts (issue 18, point 1).

For every case, in a fresh child process (so that one case's memory cannot
hide another's, and a parser that never finishes can be cut off): the time
the edit's parse takes on the prompt (``read_edit`` with the operation cap,
as the engine runs it; ``parse_edit_operations`` for the engine as it was;
best of five, wall clock and CPU), how many operations the prompt names,
and, for the cases that run the edit (through OfflineProvider, on a 64 px
PNG unless the case says otherwise), the edit's wall time, output size and
peak RSS growth (the child's ``ru_maxrss`` after the edit minus its RSS just
before it). Prints a table, then the worst parse time and the worst RSS
growth.

    .venv/bin/python bench/offline_parser.py                  # every case
    .venv/bin/python bench/offline_parser.py --only issue     # the issue's four cases
    # the engine as it was, from a single-module copy (cases past --timeout are cut off):
    git show 01035f7:app/services/genai/offline.py > /tmp/offline_before.py
    .venv/bin/python bench/offline_parser.py --module /tmp/offline_before.py --only issue
"""

from __future__ import annotations

import argparse
import importlib
import importlib.util
import io
import json
import random
import resource
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

MAX_PROMPT = 20_000  # app/web/schemas/imaging.py: Prompt's max_length


def fill(unit: str, length: int = MAX_PROMPT) -> str:
    """`unit` repeated, cut to exactly `length` characters."""
    return (unit * (length // len(unit) + 1))[:length]


@dataclass(frozen=True)
class Case:
    name: str
    prompt: Callable[[], str]
    edit: bool = True  # also run the edit on `side` px, not only the parser
    side: int = 64
    alpha: bool = False


# One phrase per rule and per language, each repeated to the maximum length.
PHRASES = [
    "black and white", "sepia", "invert", "mirror", "flip", "rotate 45", "blur 100",
    "sharpen", "brighter", "darker", "less contrast", "pixelate 2", "crop square",
    "resize 400%", "border 512px", "red", "gray", "黑白", "复古", "反色", "镜像", "上下翻转",
    "旋转45度", "模糊100", "锐化", "变亮", "变暗", "降低对比度", "像素化2", "裁剪成正方形",
    "放大 400%", "红色边框512像素", "紫色", "描边",
]  # fmt: skip
TOKENS = [*PHRASES, " ", "  ", "\n", ",", "，", " and ", "然后", "1", "512", "px", "像素", "度"]


def random_mix(seed: int) -> str:
    rng = random.Random(seed)
    parts, length = [], 0
    while length < MAX_PROMPT:
        token = rng.choice(TOKENS)
        parts.append(token)
        length += len(token)
    return "".join(parts)[:MAX_PROMPT]


CASES: list[Case] = [
    # The issue's own figures, at the sizes.
    Case("issue: 15 KB of 描边1像素,", lambda: "描边1像素," * (15 * 1024 // 14)),
    Case("issue: red + 20,000 spaces", lambda: "red" + " " * 20_000),
    Case("issue: sixteen 512 px borders", lambda: "add a 512 px border, " * 16),
    Case("issue: twelve rotate 45", lambda: "rotate 45, " * 12),
    # Everything else at the maximum prompt length.
    Case("描边1像素, to 20,000", lambda: fill("描边1像素,")),
    Case("border and 512px to 20,000", lambda: fill("border 512px and ")),
    Case("边框 with no separator", lambda: fill("边框")),
    Case("红 ×10,000 then 描边 ×5,000", lambda: "红" * 10_000 + "描边" * 5_000),
    Case("描边 ×5,000 then 红 ×10,000", lambda: "描边" * 5_000 + "红" * 10_000),
    Case("grey + spaces", lambda: "grey" + " " * (MAX_PROMPT - 4)),
    Case("spaces + 旋转", lambda: " " * (MAX_PROMPT - 2) + "旋转"),
    Case("旋转 + spaces", lambda: "旋转" + " " * (MAX_PROMPT - 2)),
    Case("对比 + spaces", lambda: "对比" + " " * (MAX_PROMPT - 2)),
    Case("newlines", lambda: "\n" * MAX_PROMPT),
    Case("space-newline", lambda: fill(" \n")),
    Case("digits", lambda: "1" * MAX_PROMPT),
    Case("边框 + digits", lambda: "边框" + "1" * (MAX_PROMPT - 2)),
    Case("digits + px", lambda: "1" * (MAX_PROMPT - 2) + "px"),
    Case("旋转 + digits", lambda: "旋转" + "1" * (MAX_PROMPT - 2)),
    Case("resize + digits", lambda: "resize " + "1" * (MAX_PROMPT - 7)),
    Case("separators only", lambda: fill(" and ")),
    Case("，only", lambda: "，" * MAX_PROMPT),
    *(Case(f"{phrase!r} repeated", lambda p=phrase: fill(p + ", ")) for phrase in PHRASES),
    *(Case(f"{phrase!r} run together", lambda p=phrase: fill(p), edit=False) for phrase in PHRASES),
    *(Case(f"random mix {seed}", lambda s=seed: random_mix(s)) for seed in range(5)),
    # The most memory an edit can take: grow to the budget, then the costliest steps.
    Case(
        "largest growth, 64 px RGBA",
        lambda: "resize to 4096x4096, rotate 45, blur 100, make it red, " * 4,
        alpha=True,
    ),
    Case(
        "largest upload (4096² RGBA), costly steps",
        lambda: "rotate 45, blur 100, make it red, sepia, 512px border, " * 4,
        side=4096,
        alpha=True,
    ),
]


def load_engine(module_path: str | None):
    if module_path is None:
        return importlib.import_module("app.services.genai.offline")
    spec = importlib.util.spec_from_file_location("offline_under_test", module_path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module


def input_png(side: int, alpha: bool) -> bytes:
    from PIL import Image

    rng = random.Random(side)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    if alpha:
        image = image.convert("RGBA")
    buffer = io.BytesIO()
    image.save(buffer, "PNG", compress_level=1)
    return buffer.getvalue()


def run_case(case: Case, module_path: str | None) -> dict:
    """In the child: the figures of one case."""
    import psutil

    from app.services.genai.contracts import GenerationRequest

    engine = load_engine(module_path)
    prompt = case.prompt()
    if hasattr(engine, "read_edit"):  # what the edit runs: every operation found, 16 built

        def parse() -> int:
            return engine.read_edit(prompt, limit=engine.MAX_EDIT_OPERATIONS).named

    else:  # the engine as it was: every operation found and built

        def parse() -> int:
            return len(engine.parse_edit_operations(prompt))

    timings, cpu = [], []
    for _ in range(5):
        started, started_cpu = time.perf_counter(), time.process_time()
        operations = parse()
        timings.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
        if timings[-1] > 1:
            break  # slow enough that one run tells the story
    figures = {
        "case": case.name,
        "chars": len(prompt),
        "parse_ms": round(min(timings) * 1000, 2),
        "parse_cpu_ms": round(min(cpu) * 1000, 2),
        "operations": operations,
    }
    if not case.edit:
        return figures
    request = GenerationRequest(
        kind="edit",
        prompt=prompt,
        model="bench",
        images=(input_png(case.side, case.alpha),),
        language="en",
    )
    provider = engine.OfflineProvider()
    rss_before = psutil.Process().memory_info().rss
    started = time.perf_counter()
    try:
        result = provider.generate(request)
    except Exception as error:  # a refusal is a figure too
        figures["edit"] = f"{type(error).__name__}: {getattr(error, 'code', error)}"
    else:
        from PIL import Image

        output = Image.open(io.BytesIO(result.images[0].data))
        figures["edit"] = f"{output.width}×{output.height}"
    figures["edit_s"] = round(time.perf_counter() - started, 2)
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # KiB on Linux
    figures["rss_growth_mb"] = round(max(0, peak - rss_before) / 2**20, 1)
    return figures


def loop_ms() -> float:
    timings = []
    for _ in range(5):
        started, total = time.process_time(), 0
        for step in range(1_000_000):
            total += step
        timings.append(time.process_time() - started)
    return min(timings) * 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--module", help="a single-file offline engine to measure instead")
    parser.add_argument("--only", action="append", default=[], help="cases whose name has this")
    parser.add_argument("--timeout", type=float, default=120, help="seconds per case")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    options = parser.parse_args()

    if options.child is not None:
        case = next(case for case in CASES if case.name == options.child)
        print(json.dumps(run_case(case, options.module), ensure_ascii=False))
        return

    selected = [c for c in CASES if not options.only or any(o in c.name for o in options.only)]
    # Timings move with the machine's load: this figure lets two runs be compared.
    print(f"machine: a 1,000,000-step Python loop takes {loop_ms():.0f} ms (best of 5)", flush=True)
    rows = []
    for case in selected:
        command = [sys.executable, __file__, "--child", case.name]
        if options.module:
            command += ["--module", options.module]
        try:
            done = subprocess.run(
                command, capture_output=True, text=True, timeout=options.timeout, check=True
            )
            row = json.loads(done.stdout.strip().splitlines()[-1])
        except subprocess.TimeoutExpired:
            row = {"case": case.name, "parse_ms": f"> {options.timeout:g} s (cut off)"}
        except subprocess.CalledProcessError as error:
            row = {"case": case.name, "parse_ms": "crashed: " + error.stderr.strip()[-200:]}
        rows.append(row)
        print(json.dumps(row, ensure_ascii=False), flush=True)

    numeric = [row for row in rows if isinstance(row.get("parse_ms"), float | int)]
    print()
    print(
        f"{'case':<44} {'chars':>6} {'parse ms':>9} {'cpu ms':>8} {'ops':>5} "
        f"{'edit':>12} {'edit s':>6} {'RSS+ MB':>8}"
    )
    for row in rows:
        print(
            f"{row['case']:<44} {row.get('chars', ''):>6} {row['parse_ms']!s:>9} "
            f"{row.get('parse_cpu_ms', '')!s:>8} {row.get('operations', ''):>5} "
            f"{row.get('edit', ''):>12} {row.get('edit_s', '')!s:>6} "
            f"{row.get('rss_growth_mb', '')!s:>8}"
        )
    if numeric:
        worst = max(numeric, key=lambda row: row["parse_ms"])
        print(f"\nworst parse: {worst['parse_ms']} ms ({worst['case']})")
        if "parse_cpu_ms" in worst:
            worst = max(numeric, key=lambda row: row["parse_cpu_ms"])
            print(f"worst parse CPU: {worst['parse_cpu_ms']} ms ({worst['case']})")
    grown = [row for row in rows if "rss_growth_mb" in row]
    if grown:
        worst = max(grown, key=lambda row: row["rss_growth_mb"])
        print(f"worst peak RSS growth: {worst['rss_growth_mb']} MB ({worst['case']})")
    if len(numeric) < len(rows):
        print(f"{len(rows) - len(numeric)} case(s) cut off or crashed")
    print(f"machine: a 1,000,000-step Python loop takes {loop_ms():.0f} ms (best of 5)")


if __name__ == "__main__":
    main()
