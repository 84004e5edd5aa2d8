"""The admin routes and the first-admin setup under hostile callers: who may
call them (401, 403, bearer tokens refused, CSRF on cookie writes), foreign
and unknown ids, bad input, and schemathesis as an admin (the general fuzz,
test_api_fuzz.py, only ever reaches them as a user who is not one)."""

from __future__ import annotations

import collections
import contextlib

import pytest
import schemathesis
from hypothesis import errors as hypothesis_errors
from hypothesis import given, settings
from hypothesis import strategies as st
from schemathesis import GenerationMode
from sqlalchemy import select, update

from app.extensions import db
from app.models import User
from tests.reliability.support import FUZZ, NO_LIMITS, PLAIN, RELIABILITY, report
from tests.reliability.test_api_fuzz import check_answer
from tests.support.app import make_app
from tests.support.auth import PASSWORD, AuthActions

EXAMPLES = 150 if FUZZ else 15

# Every admin route, with a body that would be valid.
ADMIN_ROUTES = [
    ("GET", "/admin/users", None),
    ("PATCH", "/admin/users/{victim}", {"quota_daily_images": 1}),
    ("POST", "/admin/users/{victim}/password", {"password": "new-pass-123"}),
    ("DELETE", "/admin/users/{victim}", None),
    ("POST", "/admin/invites", {"uses": 2}),
    ("GET", "/admin/invites", None),
    ("DELETE", "/admin/invites/{invite}", None),
]
WRITES = [route for route in ADMIN_ROUTES if route[0] != "GET"]


class Cast:
    """An admin (cookie session and a bearer token), a plain user, a
    victim account and an invite, on one app."""

    def __init__(self, app) -> None:
        self.app = app
        self.admin = self._user("root", admin=True)
        self.user = self._user("plain")
        self.victim_id = self._user("victim").user["id"]
        response = self.admin.client.post(
            "/auth/tokens", json={"name": "t"}, headers=self.admin.headers()
        )
        self.admin_token = response.get_json()["token"]
        response = self.admin.client.post(
            "/admin/invites", json={"uses": 3}, headers=self.admin.headers()
        )
        self.invite_id = response.get_json()["id"]

    def _user(self, name: str, admin: bool = False) -> AuthActions:
        client = self.app.test_client()
        auth = AuthActions(client)
        assert auth.signup(name).status_code == 201
        if admin:
            with self.app.app_context():
                db.session.execute(update(User).where(User.username == name).values(is_admin=True))
                db.session.commit()
        auth.client = client
        return auth

    def url(self, template: str) -> str:
        return template.format(victim=self.victim_id, invite=self.invite_id)

    def victim_unchanged(self) -> bool:
        with self.app.app_context():
            victim = db.session.get(User, self.victim_id)
            return victim is not None and victim.quota_daily_images is None


@pytest.fixture
def cast(app):
    return Cast(app)


@pytest.mark.parametrize(("method", "template", "body"), ADMIN_ROUTES)
def test_a_logged_out_caller_gets_401(cast, method, template, body):
    response = cast.app.test_client().open(cast.url(template), method=method, json=body)
    assert response.status_code == 401
    assert response.get_json()["error"] == "unauthorized"
    assert cast.victim_unchanged()


@pytest.mark.parametrize(("method", "template", "body"), ADMIN_ROUTES)
def test_a_user_who_is_not_an_admin_gets_403(cast, method, template, body):
    response = cast.user.client.open(
        cast.url(template), method=method, json=body, headers=cast.user.headers()
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "forbidden"
    assert cast.victim_unchanged()


@pytest.mark.parametrize(("method", "template", "body"), ADMIN_ROUTES)
def test_an_admins_bearer_token_cannot_administer(cast, method, template, body):
    """As token management: a leaked token must not run the install."""
    response = cast.app.test_client().open(
        cast.url(template),
        method=method,
        json=body,
        headers={"Authorization": f"Bearer {cast.admin_token}"},
    )
    assert response.status_code == 403
    assert response.get_json()["error"] == "session_required"
    assert cast.victim_unchanged()


@pytest.mark.parametrize(("method", "template", "body"), WRITES)
@pytest.mark.parametrize("token", [None, "forged"])
def test_an_admins_cookie_write_needs_the_csrf_token(cast, method, template, body, token):
    headers = {"X-CSRF-Token": token} if token else {}
    response = cast.admin.client.open(cast.url(template), method=method, json=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"] == "csrf_failed"
    assert cast.victim_unchanged()
    listed = cast.admin.client.get("/admin/invites").get_json()["items"]
    assert [item["state"] for item in listed] == ["active"]


@pytest.mark.parametrize(
    ("method", "template", "body"),
    [
        ("PATCH", "/admin/users/{id}", {"disabled": True}),
        ("POST", "/admin/users/{id}/password", {"password": "new-pass-123"}),
        ("DELETE", "/admin/users/{id}", None),
    ],
)
@pytest.mark.parametrize(("ref", "status"), [(99999, 404), (2**31, 422), (0, 422)])
def test_unknown_user_ids_are_404_and_out_of_range_422(cast, method, template, body, ref, status):
    response = cast.admin.client.open(
        template.format(id=ref), method=method, json=body, headers=cast.admin.headers()
    )
    assert response.status_code == status
    assert response.get_json()["error"] in ("not_found", "validation_error")


@pytest.mark.parametrize(
    "ref", ["99999", "nbi_not-a-code", "not-a-code", "9" * 40, "%00", "..%2F..", "nbi_" + "x" * 190]
)
def test_unknown_invites_are_404(cast, ref):
    response = cast.admin.client.delete(f"/admin/invites/{ref}", headers=cast.admin.headers())
    assert response.status_code == 404
    listed = cast.admin.client.get("/admin/invites").get_json()["items"]
    assert [item["state"] for item in listed] == ["active"]


@pytest.mark.parametrize(
    ("method", "url", "body"),
    [
        ("POST", "/admin/invites", {"uses": 0}),
        ("POST", "/admin/invites", {"uses": 1001}),
        ("POST", "/admin/invites", {"expires_in_days": 0}),
        ("POST", "/admin/invites", {"expires_in_days": 366}),
        ("POST", "/admin/invites", {"uses": "lots"}),
        ("POST", "/admin/invites", [1, 2]),
        ("PATCH", "/admin/users/{victim}", {"quota_monthly_usd": 1e308}),
        ("PATCH", "/admin/users/{victim}", {"quota_monthly_images": 2**40}),
        ("PATCH", "/admin/users/{victim}", {"disabled": None, "extra": 1}),
        ("PATCH", "/admin/users/{victim}", "not an object"),
        ("POST", "/admin/users/{victim}/password", {"password": "x" * 300}),
        ("POST", "/admin/users/{victim}/password", {}),
    ],
)
def test_bad_input_is_a_4xx_in_the_error_shape(cast, method, url, body):
    response = cast.admin.client.open(
        cast.url(url), method=method, json=body, headers=cast.admin.headers()
    )
    assert response.status_code in (400, 422), response.get_json()
    answer = response.get_json()
    assert answer["error"] and answer["message"] == answer["detail"]
    assert cast.victim_unchanged()
    assert len(cast.admin.client.get("/admin/invites").get_json()["items"]) == 1


@pytest.mark.parametrize(
    "body",
    [
        {},
        {"setup_code": None, "username": "a", "password": "b"},
        {"setup_code": "x" * 101, "username": "owner", "password": PASSWORD},
        {"setup_code": "\u0000\ud7ff", "username": "owner", "password": PASSWORD},
        {"setup_code": "AAAAA", "username": "\u202eevil", "password": PASSWORD},
    ],
)
def test_bad_setup_requests_are_refused_and_make_no_admin(app, client, body):
    from app.services import setup

    with app.app_context():
        setup.announce()
    response = client.post("/auth/setup", json=body)
    assert 400 <= response.status_code < 500
    with app.app_context():
        assert not db.session.execute(select(User).where(User.is_admin)).first()


# ---- schemathesis, as an admin ------------------------------------------------


@pytest.fixture(scope="module")
def fuzz_world(tmp_path_factory):
    app = make_app(
        tmp_path_factory.mktemp("roles-fuzz"), **NO_LIMITS, SETUP_RATE_LIMIT="1000000/minute"
    )
    world = Cast(app)
    world.schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    yield world
    app.extensions["genai"].close()


def _admin_operations(world):
    operations = [result.ok() for result in world.schema.get_all_operations()]
    return [
        op
        for op in operations
        if op.path.startswith("/admin/users")
        or op.path.startswith("/admin/invites")
        or op.path == "/auth/setup"
    ]


def _strategy(world, operation, mode):
    variants = [operation.as_strategy(generation_mode=mode)]
    for name, values in (
        ("user_id", [world.victim_id, world.admin.user["id"]]),
        ("code", [str(world.invite_id)]),
    ):
        if name in [p.name for p in operation.path_parameters]:
            for value in values:
                variants.append(
                    operation.as_strategy(generation_mode=mode, path_parameters={name: value})
                )
    return st.one_of(variants)


def _fuzz_operation(world, operation, mode, tally, failures) -> None:
    @settings(RELIABILITY, max_examples=EXAMPLES)
    @given(case=_strategy(world, operation, mode))
    def run(case):
        headers = world.admin.headers()
        cookies = {"nb_session": world.admin.client.get_cookie("nb_session").value}
        response = case.call(headers={**headers, **PLAIN}, cookies=cookies)
        tally[response.status_code] += 1
        key = (operation.label, mode.value, response.status_code)
        check_answer(case, response, key, failures)
        _keep_the_admin(world)

    # No negative case exists for an operation without inputs.
    with contextlib.suppress(hypothesis_errors.Unsatisfiable):
        run()


@pytest.mark.slow
def test_admin_routes_survive_fuzzing_as_an_admin(fuzz_world):
    world = fuzz_world
    tally: collections.Counter[int] = collections.Counter()
    failures: list = []
    operations = _admin_operations(world)
    assert len(operations) == 9  # seven admin operations, setup GET and POST
    for operation in operations:
        for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
            _fuzz_operation(world, operation, mode, tally, failures)
    report(
        "spend_roles_fuzz",
        operations=len(operations),
        requests=sum(tally.values()),
        failures=len(failures),
        statuses=dict(sorted(tally.items())),
    )
    assert not failures, "\n\n".join(f"{key}: {message}" for key, message in failures[:10])
    assert not any(status >= 500 for status in tally)
    assert tally[200] + tally[201] + tally[204] > 0
    with world.app.app_context():
        assert db.session.execute(select(User).where(User.is_admin)).first()


def _keep_the_admin(world) -> None:
    """A fuzzed password reset of the admin's own id ends their session (as
    it should): log in again with the password the case set, or the old."""
    if world.admin.client.get("/me").get_json()["authenticated"]:
        return
    with world.app.app_context():
        from app.services import accounts

        user = db.session.get(User, world.admin.user["id"])
        user.password_hash = accounts.hash_password(PASSWORD)
        user.disabled = False
        user.is_admin = True
        db.session.commit()
    assert world.admin.login("root").status_code == 200
