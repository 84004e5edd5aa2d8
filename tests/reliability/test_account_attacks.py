"""Attacks on accounts, enumerated from the app itself rather than listed by
hand: every state-changing route in the url_map is tried without, with a
forged and with another session's CSRF token; every route that takes an id
is tried with another user's ids. Plus session fixation, replay after logout
and after a password change, login brute force per address and per username
through a trusted proxy, and account enumeration by answer and by time."""

from __future__ import annotations

import statistics
import time

import pytest
from sqlalchemy import func, select

from app.extensions import db
from app.models import ApiToken, Conversation, Message
from app.web.pipeline import CSRF_EXEMPT_ENDPOINTS, STATE_CHANGING
from config import Config, TestingConfig
from tests.reliability.support import FUZZ, NO_LIMITS, report

PASSWORD = "correct-horse-1"
ID_PARAMETERS = {"conv_id", "image_id", "token_id", "job_id"}
# A bearer token may not manage tokens at all: refused whatever the id.
SESSION_ONLY_ENDPOINTS = {"auth.list_tokens", "auth.create_token", "auth.revoke_token"}
# An id that no row has: a 404 for it says nothing about ownership.
EXAMPLE_VALUES = {"conv_id": 1, "image_id": 1, "token_id": 1}


def signup(app, username):
    client = app.test_client()
    body = client.post("/auth/signup", json={"username": username, "password": PASSWORD}).get_json()
    return client, {"X-CSRF-Token": body["csrf_token"]}, body["user"]["id"]


def owned_resources(client, headers, owner: str) -> dict:
    """A conversation with one generated turn (so images), a token, and a
    finished background job.
    Images are stored once per content: each owner's prompt differs, so each
    owner's picture is their own."""
    conv = client.post("/conversations", json={"title": "mine"}, headers=headers).get_json()
    turn = client.post(
        "/v1/generate",
        json={"prompt": f"a banana for {owner}", "conv_id": conv["id"]},
        headers=headers,
    ).get_json()
    token = client.post("/auth/tokens", json={"name": "mine"}, headers=headers).get_json()
    job = client.post(
        "/v1/generate",
        json={"prompt": f"a job for {owner}", "conv_id": conv["id"]},
        headers={**headers, "Prefer": "respond-async"},
    )
    assert job.status_code == 202
    deadline = time.monotonic() + 30
    while client.get(job.headers["Location"]).get_json()["status"] != "succeeded":
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.05)
    return {
        "conv_id": conv["id"],
        "image_id": turn["image_ids"][0],
        "token_id": token["id"],
        "job_id": job.get_json()["id"],
        "index": 0,  # the job's first result image
    }


def routes(app, *, methods=None, with_ids=False):
    """(method, rule, endpoint) of the app's own routes."""
    found = []
    for rule in app.url_map.iter_rules():
        if rule.endpoint == "static" or rule.endpoint.startswith("docs."):
            continue
        if with_ids and not (set(rule.arguments) & ID_PARAMETERS):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            if methods is None or method in methods:
                found.append((method, rule, rule.endpoint))
    return found


def url_for(rule, values: dict) -> str:
    return rule.build({name: values[name] for name in rule.arguments}, append_unknown=False)[1]


def table_counts(app) -> dict[str, int]:
    with app.app_context():
        return {
            model.__name__: db.session.execute(select(func.count()).select_from(model)).scalar()
            for model in (Conversation, Message, ApiToken)
        }


# ---- CSRF on every state-changing route -----------------------------------


def test_every_state_changing_route_needs_the_csrf_token(app):
    alice, alice_headers, _ = signup(app, "alice")
    mine = owned_resources(alice, alice_headers, "alice")
    _, bob_headers, bob_id = signup(app, "bob")
    # The admin routes' ids: the check comes before the view learns alice is no admin.
    mine |= {"user_id": bob_id, "code": "1"}
    writes = routes(app, methods=STATE_CHANGING)
    protected = [r for r in writes if r[2] not in CSRF_EXEMPT_ENDPOINTS]
    # Only the two routes that start a session go without; nothing else.
    assert {r[2] for r in writes} - {r[2] for r in protected} == {"auth.login", "auth.signup"}
    before = table_counts(app)
    tried = 0
    for method, rule, _ in protected:
        url = url_for(rule, mine)
        for forged in (None, "forged-token", bob_headers["X-CSRF-Token"]):
            headers = {"X-CSRF-Token": forged} if forged else {}
            response = alice.open(url, method=method, json={"title": "x"}, headers=headers)
            tried += 1
            assert response.status_code == 400, (method, url, forged, response.get_json())
            assert response.get_json()["error"] == "csrf_failed"
    assert table_counts(app) == before  # nothing was written
    assert alice.get("/me").get_json()["authenticated"]  # logout was refused too
    report("csrf", routes=len(protected), requests=tried, accepted=0)


def test_a_bearer_header_is_the_identity_never_a_csrf_bypass(app):
    """Writes with a bearer header skip the CSRF check (browsers don't add
    one on their own). Found here: a session cookie still decided who the
    request was, so any `Authorization: Bearer junk` let a cookie write
    through without its CSRF token. Now the token alone is the identity."""
    alice, headers, _ = signup(app, "alice")
    token = alice.post("/auth/tokens", json={"name": "cli"}, headers=headers).get_json()
    script = app.test_client()  # no cookie: a script with a token
    response = script.post(
        "/conversations", json={}, headers={"Authorization": f"Bearer {token['token']}"}
    )
    assert response.status_code == 201
    before = table_counts(app)
    for junk in ("nb_x", "", "not-a-token"):
        response = alice.post(
            "/conversations", json={}, headers={"Authorization": f"Bearer {junk}"}
        )
        assert response.status_code == 401
        assert response.get_json()["error"] == "invalid_token"
        response = alice.post("/auth/logout", headers={"Authorization": f"Bearer {junk}"})
        assert response.status_code == 401
    assert table_counts(app) == before
    assert alice.get("/me").get_json()["authenticated"]
    # Bob's cookie with Alice's token is Alice.
    bob, _, _ = signup(app, "bob")
    me = bob.get("/me", headers={"Authorization": f"Bearer {token['token']}"}).get_json()
    assert me["user"]["username"] == "alice"
    assert bob.get("/me").get_json()["user"]["username"] == "bob"


# ---- another user's ids ---------------------------------------------------


@pytest.mark.parametrize("via", ["session", "bearer"])
def test_another_users_id_is_404_on_every_route(app, via):
    alice, alice_headers, _ = signup(app, "alice")
    theirs = owned_resources(alice, alice_headers, "alice")
    mallory, mallory_headers, _ = signup(app, "mallory")
    hers = owned_resources(mallory, mallory_headers, "mallory")  # so her own ids exist too
    if via == "bearer":
        token = mallory.post("/auth/tokens", json={"name": "t"}, headers=mallory_headers)
        mallory = app.test_client()
        mallory_headers = {"Authorization": f"Bearer {token.get_json()['token']}"}
    before = table_counts(app)
    checked = []
    for method, rule, endpoint in routes(app, with_ids=True):
        url = url_for(rule, theirs)
        # A valid body (her own conversation to file into), so only the id can refuse.
        body = {"title": "mine now", "conv_id": hers["conv_id"]}
        response = mallory.open(url, method=method, json=body, headers=mallory_headers)
        checked.append((method, rule.rule))
        if via == "bearer" and endpoint in SESSION_ONLY_ENDPOINTS:
            assert response.status_code == 403, (method, url, response.status_code)
            assert response.get_json()["error"] == "session_required"
            continue
        assert response.status_code == 404, (method, url, response.status_code)
        assert response.get_json()["error"] == "not_found"
    # Through the id-taking body fields too: conv_id and source_image_ids.
    response = mallory.post(
        "/v1/generate",
        json={"prompt": "x", "conv_id": theirs["conv_id"]},
        headers=mallory_headers,
    )
    assert response.status_code == 404
    response = mallory.post(
        "/v1/edit",
        data={"prompt": "x", "source_image_ids": str(theirs["image_id"])},
        headers=mallory_headers,
        content_type="multipart/form-data",
    )
    assert response.status_code == 404
    assert response.get_json()["error"] == "image_not_found"
    assert table_counts(app) == before
    # Alice's things are all still there and still hers.
    assert alice.get(f"/conversations/{theirs['conv_id']}").get_json()["title"] == "mine"
    assert alice.get(f"/images/{theirs['image_id']}").status_code == 200
    ids = [t["id"] for t in alice.get("/auth/tokens").get_json()["items"]]
    assert theirs["token_id"] in ids
    covered = {rule for _, rule in checked}
    assert {
        "/conversations/<int:conv_id>",
        "/conversations/<int:conv_id>/messages",
        "/images/<int:image_id>",
        "/images/<int:image_id>/thumb",
        "/auth/tokens/<int:token_id>",
        "/v1/jobs/<job_id>",
        "/v1/jobs/<job_id>/events",
        "/v1/jobs/<job_id>/images/<int:index>",
        "/v1/jobs/<job_id>/save",
    } <= covered
    report(f"idor[{via}]", routes=len(checked) + 2, refused=len(checked) + 2)


# ---- session fixation and replay ------------------------------------------


def session_id(client):
    cookie = client.get_cookie("nb_session")
    return cookie.value if cookie else None


def test_session_fixation_planted_and_server_issued_ids_are_not_kept(app):
    signup(app, "alice")
    # 1. An id the attacker made up.
    victim = app.test_client()
    victim.set_cookie("nb_session", "attacker-chosen-session-id")
    victim.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert session_id(victim) not in (None, "attacker-chosen-session-id")
    # 2. A real id the server issued to the attacker (his own logged-in session).
    attacker, _, _ = signup(app, "mallory")
    planted = session_id(attacker)
    victim = app.test_client()
    victim.set_cookie("nb_session", planted)
    victim.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert session_id(victim) != planted
    # The attacker's copy of the old id is not Alice.
    me = attacker.get("/me").get_json()
    assert not me["authenticated"] or me["user"]["username"] == "mallory"
    replay = app.test_client()
    replay.set_cookie("nb_session", planted)
    me = replay.get("/me").get_json()
    assert not me["authenticated"] or me["user"]["username"] == "mallory"


def test_replay_after_logout_and_after_password_change(app):
    browser, headers, _ = signup(app, "alice")
    laptop = app.test_client()
    body = laptop.post("/auth/login", json={"username": "alice", "password": PASSWORD}).get_json()
    laptop_headers = {"X-CSRF-Token": body["csrf_token"]}
    stolen_laptop = session_id(laptop)
    stolen_browser = session_id(browser)

    # Logout: the laptop's cookie and CSRF token are worthless afterwards.
    assert laptop.post("/auth/logout", headers=laptop_headers).status_code == 200
    thief = app.test_client()
    thief.set_cookie("nb_session", stolen_laptop)
    assert thief.get("/conversations").status_code == 401
    assert thief.post("/conversations", json={}, headers=laptop_headers).status_code in (400, 401)
    assert thief.get("/me").get_json()["authenticated"] is False

    # Password change: every other cookie dies, and the changing one is renewed.
    other = app.test_client()
    other.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    stolen_other = session_id(other)
    response = browser.post(
        "/auth/password",
        json={"current_password": PASSWORD, "new_password": "brand-new-pass-2"},
        headers=headers,
    )
    assert response.status_code == 200
    for stolen in (stolen_other, stolen_browser):
        thief = app.test_client()
        thief.set_cookie("nb_session", stolen)
        assert thief.get("/conversations").status_code == 401
        assert thief.get("/me").get_json()["authenticated"] is False
    assert session_id(browser) != stolen_browser
    assert browser.get("/conversations").status_code == 200
    # The old password is refused, the new one works.
    fresh = app.test_client()
    old = fresh.post("/auth/login", json={"username": "alice", "password": PASSWORD})
    assert old.status_code == 401
    new = fresh.post("/auth/login", json={"username": "alice", "password": "brand-new-pass-2"})
    assert new.status_code == 200


# ---- brute force -----------------------------------------------------------


def _limit(spec: str) -> int:
    """The first number of a limit string such as '10/minute;50/hour'."""
    return int(spec.split(";")[0].split("/")[0])


def test_brute_force_per_address_through_a_trusted_proxy(app_factory):
    """One address spraying many usernames is stopped at the production
    per-address limit, whatever X-Forwarded-For entries it forges; other
    addresses still log in."""
    app = app_factory(TRUSTED_PROXY_COUNT=1)
    signup(app, "alice")
    per_address = _limit(Config.LOGIN_RATE_LIMIT)
    client = app.test_client()
    statuses = []
    for n in range(per_address + 10):
        response = client.post(
            "/auth/login",
            json={"username": f"user{n}", "password": "guess-123456"},
            headers={"X-Forwarded-For": f"10.9.{n}.1, 198.51.100.7"},  # forged, then real
        )
        statuses.append(response.status_code)
    assert statuses[:per_address] == [401] * per_address
    assert set(statuses[per_address:]) == {429}
    limited = client.post(
        "/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.7"},
    )
    assert limited.status_code == 429 and int(limited.headers["Retry-After"]) >= 1
    elsewhere = client.post(
        "/auth/login",
        json={"username": "alice", "password": PASSWORD},
        headers={"X-Forwarded-For": "198.51.100.99"},
    )
    assert elsewhere.status_code == 200
    report("brute_force_per_address", attempts=len(statuses), refused=statuses.count(429))


def test_brute_force_per_username_with_rotating_addresses(app_factory):
    """One username tried from a new address every time (a botnet through
    the proxy): stopped at the production ceiling of failed logins per
    username from all addresses, which also catches case and width
    variants of the name."""
    app = app_factory(TRUSTED_PROXY_COUNT=1)
    signup(app, "alice")
    per_user = _limit(Config.LOGIN_USER_CEILING)
    client = app.test_client()
    variants = ["alice", "ALICE", "Alice", "ａｌｉｃｅ", " alice "]
    statuses = []
    for n in range(per_user + 20):
        response = client.post(
            "/auth/login",
            json={"username": variants[n % len(variants)], "password": f"guess-{n:06}"},
            headers={"X-Forwarded-For": f"203.0.{n // 250}.{n % 250 + 1}"},
        )
        statuses.append(response.status_code)
    assert statuses[:per_user] == [401] * per_user
    assert set(statuses[per_user:]) == {429}
    # Another account, from any address, is untouched.
    signup(app, "bob")
    other = client.post(
        "/auth/login",
        json={"username": "bob", "password": PASSWORD},
        headers={"X-Forwarded-For": "203.0.9.9"},
    )
    assert other.status_code == 200
    report(
        "brute_force_per_username",
        attempts=len(statuses),
        addresses=len(statuses),
        refused=statuses.count(429),
    )


# ---- enumeration -----------------------------------------------------------

TRIES = 200
# make test: the test suite's scrypt cost (N=2^10), so 400 logins take
# seconds; the dummy-hash defence is the same code at any cost. make fuzz:
# production's N=2^15, r=8, p=3 (~0.1-0.4 s a login here).
HASH_METHOD = Config.PASSWORD_HASH_METHOD if FUZZ else TestingConfig.PASSWORD_HASH_METHOD


@pytest.mark.slow
def test_unknown_user_and_wrong_password_are_indistinguishable(app_factory):
    """Same status, same body, and the same time: median within 10 % over
    200 tries each, interleaved."""
    app = app_factory(PASSWORD_HASH_METHOD=HASH_METHOD, **NO_LIMITS)
    signup(app, "alice")
    client = app.test_client()
    bodies: dict[str, set] = {"unknown": set(), "wrong": set()}
    statuses: dict[str, set] = {"unknown": set(), "wrong": set()}
    times: dict[str, list[float]] = {"unknown": [], "wrong": []}
    for n in range(TRIES):
        for kind, username in (("unknown", f"nobody{n}"), ("wrong", "alice")):
            started = time.perf_counter()
            response = client.post(
                "/auth/login", json={"username": username, "password": f"guess-{n:06}"}
            )
            times[kind].append(time.perf_counter() - started)
            statuses[kind].add(response.status_code)
            bodies[kind].add(response.get_data(as_text=True))
    assert statuses["unknown"] == statuses["wrong"] == {401}
    assert bodies["unknown"] == bodies["wrong"] and len(bodies["wrong"]) == 1
    unknown, wrong = statistics.median(times["unknown"]), statistics.median(times["wrong"])
    report(
        "enumeration",
        hash=HASH_METHOD,
        tries_each=TRIES,
        median_unknown_ms=round(unknown * 1000, 1),
        median_wrong_ms=round(wrong * 1000, 1),
        difference_pct=round(abs(unknown - wrong) / wrong * 100, 1),
    )
    assert abs(unknown - wrong) <= 0.10 * wrong
