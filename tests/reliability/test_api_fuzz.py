"""Schemathesis against the app's own /openapi.json, in process (WSGI).

Every operation, positive and negative data, as three callers: anonymous,
a session cookie with its CSRF token, and a bearer token. Checks: no 5xx,
every status documented, the documented content type and schema, and the
one error shape (message == detail). Path ids are drawn from random ones,
the caller's own and another user's (which must never answer 2xx).
Imaging runs on the offline engine.

`make test`: 12 examples per operation, mode and caller (>= 1,000 requests);
`make fuzz` (HYPOTHESIS_PROFILE=fuzz): 150.
"""

from __future__ import annotations

import collections
import contextlib
import time

import pytest
import schemathesis
from hypothesis import errors as hypothesis_errors
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from tests.reliability.support import FUZZ, NO_LIMITS, PLAIN, RELIABILITY, report
from tests.support.app import make_app
from tests.support.images import png_bytes

EXAMPLES = 150 if FUZZ else 12
MIN_REQUESTS_PER_CALLER = 340  # x3 callers: at least 1,000 in all
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
]
# Operations after which the caller's session or token may be gone.
IDENTITY_CHANGING = {
    "POST /auth/logout",
    "POST /auth/password",
    "POST /auth/login",
    "POST /auth/signup",
    "DELETE /auth/tokens/{token_id}",
}
PASSWORD = "fuzz-pass-123"
FINISHED_JOB = ("succeeded", "failed", "canceled")


class World:
    """The app, its schema, the fuzzing user's and a victim's resources."""

    def __init__(self, tmp_path) -> None:
        self.app = make_app(tmp_path, **NO_LIMITS)
        self.schema = schemathesis.openapi.from_wsgi("/openapi.json", self.app)
        self.own = self._populate("fuzzer")
        self.victim = self._populate("victim")
        self.identities: dict[str, tuple[dict, dict]] = {"anonymous": ({}, {})}
        self.refresh()

    def _populate(self, username: str) -> dict[str, list[int]]:
        client = self.app.test_client()
        body = client.post(
            "/auth/signup", json={"username": username, "password": PASSWORD}
        ).get_json()
        headers = {"X-CSRF-Token": body["csrf_token"]}
        ids: dict[str, list] = {"conv_id": [], "image_id": [], "token_id": []}
        for n in range(2):
            conv = client.post("/conversations", json={"title": f"c{n}"}, headers=headers)
            conv_id = conv.get_json()["id"]
            result = client.post(
                "/v1/generate",
                json={"prompt": f"banana {n}", "conv_id": conv_id, "seed": n},
                headers=headers,
            ).get_json()
            ids["conv_id"].append(conv_id)
            ids["image_id"] += result["image_ids"]
        token = client.post("/auth/tokens", json={"name": "spare"}, headers=headers).get_json()
        ids["token_id"].append(token["id"])
        # A finished job each: its routes are fuzzed on an id that exists,
        # and the victim's must never answer 2xx to the fuzzing user.
        job = client.post(
            "/v1/generate",
            json={"prompt": "banana job", "conv_id": ids["conv_id"][0]},
            headers={**headers, "Prefer": "respond-async"},
        )
        assert job.status_code == 202, job.get_data(as_text=True)
        ids["job_id"] = [job.get_json()["id"]]
        deadline = time.monotonic() + 30
        while client.get(job.headers["Location"]).get_json()["status"] not in FINISHED_JOB:
            assert time.monotonic() < deadline, "the job did not finish"
            time.sleep(0.05)
        return ids

    def refresh(self) -> None:
        """(Re)establish the session and the bearer token of the fuzzing user."""
        client = self.app.test_client()
        body = client.post(
            "/auth/login", json={"username": "fuzzer", "password": PASSWORD}
        ).get_json()
        headers = {"X-CSRF-Token": body["csrf_token"]}
        for token in client.get("/auth/tokens").get_json()["items"]:
            if token["name"] == "fuzz":
                client.delete(f"/auth/tokens/{token['id']}", headers=headers)
        secret = client.post("/auth/tokens", json={"name": "fuzz"}, headers=headers).get_json()
        self.identities["session"] = (
            headers,
            {"nb_session": client.get_cookie("nb_session").value},
        )
        self.identities["bearer"] = ({"Authorization": f"Bearer {secret['token']}"}, {})


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    world = World(tmp_path_factory.mktemp("fuzz"))
    yield world
    world.app.extensions["genai"].close()


def _strategy(world: World, operation, mode: GenerationMode):
    """Random cases, plus cases on ids that exist (own and the victim's),
    plus, for edit and compose, cases carrying real PNG files."""
    base = operation.as_strategy(generation_mode=mode)
    variants = [base]
    names = [p.name for p in operation.path_parameters]
    for name in names:
        for owner in (world.own, world.victim):
            for value in owner.get(name, []):
                variants.append(
                    operation.as_strategy(generation_mode=mode, path_parameters={name: value})
                )
    if operation.label in ("POST /v1/edit", "POST /v1/compose"):
        files = [png_bytes((200, 30, 30)), png_bytes((30, 30, 200), size=(20, 40))]

        def with_files(case):
            if isinstance(case.body, dict):
                case.body["files"] = files
                case.body.pop("source_image_ids", None)
            return case

        variants.append(base.map(with_files))
    if operation.label in ("POST /v1/generate", "POST /v1/edit", "POST /v1/compose"):

        def as_job(case):
            case.headers = {**(case.headers or {}), "Prefer": "respond-async"}
            return case

        variants.append(base.map(as_job))
    return st.one_of(variants)


def check_answer(case, response, key, failures: list) -> None:
    """The schema's checks and, for an error, the one error shape; what fails
    goes to `failures` under `key`."""
    try:
        case.validate_response(response, checks=CHECKS)
    except BaseException as failure:  # schemathesis' FailureGroup is a BaseException
        if isinstance(failure, KeyboardInterrupt):
            raise
        failures.append((key, str(failure)[:800]))
    if response.status_code >= 400 and "json" in response.headers.get("content-type", [""])[0]:
        body = response.json()
        if not (body.get("error") and body.get("message") == body.get("detail")):
            failures.append((key, f"not the error shape: {body}"))


def _fuzz_operation(world: World, operation, caller: str, mode, tally, failures) -> None:
    @settings(RELIABILITY, max_examples=EXAMPLES)
    @given(case=_strategy(world, operation, mode))
    def run(case):
        headers, cookies = world.identities[caller]
        response = case.call(headers={**headers, **PLAIN}, cookies=dict(cookies))
        tally[response.status_code] += 1
        key = (operation.label, caller, mode.value, response.status_code)
        check_answer(case, response, key, failures)
        for name, value in (case.path_parameters or {}).items():
            if value in world.victim.get(name, ()) and response.status_code < 300:
                failures.append((key, f"another user's {name}={value}: {response.status_code}"))
        if operation.label in IDENTITY_CHANGING:
            world.refresh()

    # No negative case exists for an operation without inputs.
    with contextlib.suppress(hypothesis_errors.Unsatisfiable):
        run()


@pytest.mark.slow
@pytest.mark.parametrize("caller", ["anonymous", "session", "bearer"])
def test_every_operation_survives_fuzzing(world, caller):
    tally: collections.Counter[int] = collections.Counter()
    failures: list = []
    operations = [result.ok() for result in world.schema.get_all_operations()]
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(world, operation, caller, mode, tally, failures)
    requests = sum(tally.values())
    report(
        f"api_fuzz[{caller}]",
        operations=len(operations),
        requests=requests,
        failures=len(failures),
        statuses=dict(sorted(tally.items())),
    )
    assert not failures, "\n\n".join(f"{key}: {message}" for key, message in failures[:10])
    assert requests >= MIN_REQUESTS_PER_CALLER
    assert not any(status >= 500 for status in tally)
    assert tally[200] + tally[201] + tally[204] > 0


def test_multipart_part_without_a_name_is_not_a_500(client, auth):
    """Found by the fuzzer: a form part whose name holds a line break comes out
    of werkzeug's parser as a None key, and Flask-WTF's scan of the form's
    field names for a token crashed on it (500 on every cookie write)."""
    auth.signup()
    for token in (auth.csrf_token, "wrong"):
        response = client.post(
            "/v1/edit",
            data={"\n8": "v", "prompt": "hi"},
            headers={"X-CSRF-Token": token},
            content_type="multipart/form-data",
        )
        expected = "csrf_failed" if token == "wrong" else "not_enough_images"
        assert response.status_code == 400, response.get_json()
        assert response.get_json()["error"] == expected


@pytest.mark.parametrize("huge", [2**31, 2**40, 2**63 - 1, 2**64])
def test_ids_past_the_column_range_are_refused_not_a_500(client, auth, huge):
    """Found by the fuzzer on PostgreSQL: id columns are 32-bit there, and
    an id the schema allowed (up to 2**63 - 1) made the query fail with
    "integer out of range", a 500 on every route taking an id."""
    auth.signup()
    headers = auth.headers()
    for method, url in [
        ("GET", f"/conversations/{huge}"),
        ("GET", f"/conversations/{huge}/messages"),
        ("PATCH", f"/conversations/{huge}"),
        ("DELETE", f"/conversations/{huge}"),
        ("GET", f"/images/{huge}"),
        ("GET", f"/images/{huge}/thumb"),
        ("DELETE", f"/auth/tokens/{huge}"),
    ]:
        response = client.open(url, method=method, json={"title": "x"}, headers=headers)
        assert response.status_code in (404, 422), (method, url, response.status_code)
    response = client.post("/v1/generate", json={"prompt": "x", "conv_id": huge}, headers=headers)
    assert response.status_code in (404, 422)
    response = client.post(
        "/v1/edit",
        data={"prompt": "x", "source_image_ids": str(huge)},
        headers=headers,
        content_type="multipart/form-data",
    )
    assert response.status_code in (404, 422)
