"""The shipped catalogue matches the code: every msgid the code marks has a
Chinese translation with the same placeholders, and the compiled .mo is
the .po compiled now. When one fails: `make translations`, fill in any
empty msgstr in the .po, run it again."""

from __future__ import annotations

import ast
import fnmatch
import importlib
import io
import pkgutil
import re
from pathlib import Path

import pytest
from babel.messages.extract import DEFAULT_KEYWORDS, extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po

import app as app_package
from app.errors import AppError

ROOT = Path(__file__).resolve().parent.parent
CATALOGUE = ROOT / "app/translations/zh_Hans/LC_MESSAGES"
# As the Makefile's `translations` target: pybabel's keywords plus -k _l.
KEYWORDS = {**DEFAULT_KEYWORDS, "_l": None}
# Ideographs, and CJK punctuation ("、" is a whole translation).
CJK = re.compile(r"[\u3000-\u303f\u4e00-\u9fff\uff00-\uffef]")
# The offline engine's prompt vocabulary: words it recognises in a prompt, not
# text it says. Chinese may stand in these modules, and in any regex.
PROMPT_VOCABULARY = {
    "app/services/genai/offline/colours.py",
    "app/services/genai/offline/edit_words.py",
}


@pytest.fixture(scope="module")
def catalogue():
    with (CATALOGUE / "messages.po").open("rb") as handle:
        return read_po(handle)


@pytest.fixture(scope="module")
def msgids_in_code() -> dict[str, str]:
    """msgid -> where the code marks it, extracted as pybabel does."""
    with (ROOT / "babel.cfg").open() as handle:
        method_map, options_map = parse_mapping_cfg(handle)
    found = {}
    for filename, line, message, _comments, _context in extract_from_dir(
        ROOT / "app", method_map, options_map, keywords=KEYWORDS
    ):
        msgid = message[0] if isinstance(message, tuple) else message
        found.setdefault(msgid, f"app/{filename}:{line}")
    return found


def test_the_code_marks_messages(msgids_in_code):
    # The extraction itself works (a wrong keyword or mapping finds nothing).
    assert "Not found." in msgids_in_code
    assert "Image %(image_id)s does not exist or is not yours." in msgids_in_code


def test_every_message_in_the_code_has_a_chinese_translation(catalogue, msgids_in_code):
    missing = [
        f"{where}: {msgid!r}"
        for msgid, where in msgids_in_code.items()
        if not (catalogue.get(msgid) and catalogue.get(msgid).string)
        or "fuzzy" in catalogue.get(msgid).flags
    ]
    assert not missing, "untranslated (run `make translations`, fill in the .po):\n" + "\n".join(
        missing
    )


def test_every_translation_is_chinese_with_the_same_placeholders(catalogue):
    not_chinese = [m.id for m in catalogue if m.id and not CJK.search(m.string)]
    assert not not_chinese
    problems = [(message.id, [str(e) for e in errors]) for message, errors in catalogue.check()]
    assert not problems


def test_the_catalogue_holds_no_message_the_code_dropped(catalogue, msgids_in_code):
    unused = [
        message.id for message in catalogue if message.id and message.id not in msgids_in_code
    ]
    assert not unused, "run `make translations` to retire them"


def test_the_shipped_mo_is_the_po_compiled(catalogue):
    compiled = io.BytesIO()
    write_mo(compiled, catalogue)
    shipped = (CATALOGUE / "messages.mo").read_bytes()
    assert compiled.getvalue() == shipped, "stale messages.mo: run `make translations`"


def _docker_ignores(path: str) -> bool:
    """.dockerignore's verdict on `path` (the last matching line wins; a
    pattern that matches a folder leaves out all below it)."""
    ignored = False
    lines = (ROOT / ".dockerignore").read_text(encoding="utf-8").splitlines()
    for pattern in (line.strip() for line in lines):
        if not pattern or pattern.startswith("#"):
            continue
        keep = pattern.startswith("!")
        pattern = pattern.lstrip("!").strip("/")
        parts = path.split("/")
        prefixes = ["/".join(parts[: n + 1]) for n in range(len(parts))]
        if any(fnmatch.fnmatchcase(prefix, pattern) for prefix in prefixes):
            ignored = not keep
    return ignored


def test_the_docker_image_gets_the_compiled_catalogue():
    # The image is built from `COPY . .` with no build step for translations.
    assert "COPY . ." in (ROOT / "Dockerfile").read_text(encoding="utf-8")
    assert not _docker_ignores("app/translations/zh_Hans/LC_MESSAGES/messages.mo")
    assert _docker_ignores(".venv/lib/x.py")  # the check itself does match


def _error_class_names() -> set[str]:
    for module in pkgutil.walk_packages(app_package.__path__, "app."):
        importlib.import_module(module.name)
    names, todo = set(), [AppError]
    while todo:
        cls = todo.pop()
        names.add(cls.__name__)
        todo += cls.__subclasses__()
    return names


def _docstrings(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef):
            body = node.body
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                found.add(id(body[0].value))
    return found


def _in_regexes(tree: ast.AST) -> set[int]:
    found = set()
    for node in ast.walk(tree):
        func = node.func if isinstance(node, ast.Call) else None
        if isinstance(func, ast.Attribute) and func.attr == "compile":
            found |= {id(inner) for arg in node.args for inner in ast.walk(arg)}
    return found


def _text_outside_the_catalogue(path: Path, error_names: set[str]) -> list[str]:
    where = path.relative_to(ROOT).as_posix()
    tree = ast.parse(path.read_text(encoding="utf-8"))
    allowed = _docstrings(tree) | _in_regexes(tree)
    found = []
    for node in ast.walk(tree):
        line = f"{where}:{getattr(node, 'lineno', '?')}"
        if (
            isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and CJK.search(node.value)
            and id(node) not in allowed
            and where not in PROMPT_VOCABULARY
        ):
            found.append(f"{line}: Chinese text in code: {node.value[:40]!r}")
        elif isinstance(node, ast.Compare) and where != "app/i18n.py":
            operands = [node.left, *node.comparators]
            if any(isinstance(o, ast.Constant) and o.value in ("zh", "en") for o in operands):
                found.append(f"{line}: a language test: translate(message, language) instead")
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.id if isinstance(func, ast.Name) else getattr(func, "attr", None)
            if name in error_names and isinstance(node.args[0], ast.Constant | ast.JoinedStr):
                found.append(f"{line}: {name}() with text not marked for the catalogue")
        elif isinstance(node, ast.Name | ast.Attribute):
            name = node.id if isinstance(node, ast.Name) else node.attr
            if name in ("message_en", "message_zh"):
                found.append(f"{line}: {name}: one message, _l(...), and error.text(language)")
    return found


def test_server_text_is_written_only_through_the_catalogue():
    # The one way to write what the server says: _l()/_()/N_() and the .po.
    # An English/Chinese pair, a `language == "zh"` branch or an error raised
    # with a bare string would be text a Chinese caller reads in English.
    error_names = _error_class_names()
    found = [
        problem
        for path in sorted((ROOT / "app").rglob("*.py"))
        for problem in _text_outside_the_catalogue(path, error_names)
    ]
    assert not found, "\n".join(found)
