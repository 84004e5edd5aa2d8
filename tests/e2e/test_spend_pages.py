"""Spend control in the page (issue 12, point 5): the setup form, invites,
the quota chip, the usage panel with its chart, the admin panel (quota
change, invite, disable), a quota refusal — in English and Chinese, on a
desktop and a phone."""

from __future__ import annotations

import json
import re
import time
import urllib.request
from pathlib import Path

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    PASSWORD,
    PHONE,
    goto_ready,
    no_horizontal_overflow,
    screenshot,
    sign_up_by_api,
    unique_name,
    wait_images_loaded,
)
from tests.wsgi_server import NO_LIMITS, WsgiServer, isolated_environment

RESULT_IMAGES = ".msg-assistant .tile img"
ROOT = Path(__file__).resolve().parents[2]
SETUP_CODE = re.compile(r"setup code ([A-Z0-9]{5}(?:-[A-Z0-9]{5}){3})")
DAILY_QUOTA = 3
_DIRECT = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _start(tmp: Path, name: str, **settings: str) -> WsgiServer:
    defaults = dict(SIGNUP_POLICY="invite", QUOTA_DAILY_IMAGES=str(DAILY_QUOTA))
    env = isolated_environment(
        tmp,
        SECRET_KEY="test",
        GENAI_PROVIDER="offline",
        GENAI_MIN_INTERVAL_MS="0",
        **NO_LIMITS,
        **{**defaults, **settings},
    )
    return WsgiServer(env, tmp / "server.log", name=name).start()


def setup_code(server: WsgiServer) -> str:
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        found = SETUP_CODE.findall(server.console() + server.app_log())
        if found:
            return found[-1]
        time.sleep(0.1)
    raise AssertionError("no setup code in the log:\n" + server.console())


def _post(server: WsgiServer, path: str, body: dict) -> dict:
    request = urllib.request.Request(
        server.url(path),
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    with _DIRECT.open(request, timeout=10) as response:
        return json.loads(response.read())


@pytest.fixture(scope="module")
def fresh_server(tmp_path_factory):
    """No admin yet: the page offers the setup form."""
    server = _start(tmp_path_factory.mktemp("spend-fresh"), "spend-fresh")
    yield server
    server.stop()


@pytest.fixture(scope="module")
def spend_server(tmp_path_factory):
    """Invite-only signup, 3 images a day, and an admin made with the setup code."""
    server = _start(tmp_path_factory.mktemp("spend"), "spend")
    _post(
        server,
        "/auth/setup",
        {"setup_code": setup_code(server), "username": "boss", "password": PASSWORD},
    )
    yield server
    server.stop()


def log_in(page, username: str, password: str = PASSWORD) -> None:
    page.locator("#login-btn").click()
    page.locator("#auth-username").fill(username)
    page.locator("#auth-password").fill(password)
    page.locator("#auth-submit").click()
    expect(page.locator("#account-name")).to_have_text(username)


def open_settings_button(page, selector: str) -> None:
    """The settings panel is a drawer below 1100 px; its buttons are inside."""
    if not page.locator(selector).is_visible():
        page.locator("#open-settings").click()
    page.locator(selector).click()


def send(page, prompt: str) -> None:
    page.locator("#prompt").fill(prompt)
    page.locator("#prompt").press("Enter")


# ---- the setup form ------------------------------------------------------------------------


@pytest.mark.browser
def test_setup_form_makes_the_first_admin(fresh_server, open_page, console):
    console.allow(r"status of 403")  # the wrong setup code
    page = open_page(fresh_server)
    page.locator("#login-btn").click()
    expect(page.locator("#setup-offer")).to_be_visible()
    # Invite policy: signing up asks for the code.
    page.locator("#tab-signup").click()
    expect(page.locator("#auth-invite")).to_be_visible()
    page.locator("#tab-login").click()
    expect(page.locator("#auth-invite")).to_be_hidden()

    page.locator("#setup-start").click()
    expect(page.locator("#auth-title")).to_have_text("Set up the admin account")
    expect(page.locator("#auth-setup-code")).to_be_focused()
    expect(page.locator("#auth-tabs")).to_be_hidden()
    page.locator("#auth-setup-code").fill("AAAAA-BBBBB-CCCCC-DDDDD")
    page.locator("#auth-username").fill("owner")
    page.locator("#auth-password").fill(PASSWORD)
    page.locator("#auth-submit").click()
    expect(page.locator("#auth-error")).to_contain_text("setup code is not valid")
    expect(page.locator("#auth-setup-code")).to_be_focused()

    page.locator("#auth-setup-code").fill(setup_code(fresh_server).lower())
    page.locator("#auth-submit").click()
    expect(page.locator("#account-name")).to_have_text("owner")
    expect(page.locator("#open-admin")).to_be_visible()
    # Set up: the offer is gone for good.
    page.locator("#logout-btn").click()
    page.locator("#confirm-ok").click()  # "Log out?" asks first
    goto_ready(page)
    page.locator("#login-btn").click()
    expect(page.locator("#setup-offer")).to_be_hidden()


# ---- the whole round: invite, sign up, use, limit, refuse, disable ----------------------------

CASES = {
    "en-desktop": dict(locale="en-US", viewport=None),
    "zh-phone": dict(locale="zh-CN", viewport=PHONE, color_scheme="dark"),
}
TEXT = {
    "en-US": dict(
        left_2="2 images left today",
        none="No images left",
        resets=re.compile(r"Resets (at|in|on)"),
        quota_saved="Quota saved",
        disabled="Disabled",
    ),
    "zh-CN": dict(
        left_2="今天还可生成 2 张",
        none="额度已用完",
        resets=re.compile(r"重置"),
        quota_saved="已保存",
        disabled="已停用",
    ),
}


@pytest.mark.browser
@pytest.mark.parametrize("case", list(CASES))
def test_invite_usage_panel_quota_change_and_disable(spend_server, open_page, console, case):
    console.allow(r"status of 429")  # the refused generation
    console.allow(r"status of 401")  # the disabled user's page
    options = CASES[case]
    text = TEXT[options["locale"]]
    phone = options["viewport"] is PHONE

    # The admin makes an invite in the admin panel; the code is shown once.
    admin = open_page(spend_server, **options)
    log_in(admin, "boss")
    open_settings_button(admin, "#open-admin")
    dialog = admin.locator("#admin-dialog")
    expect(dialog).to_be_visible()
    admin.locator("#admin-tab-invites").click()
    admin.locator("#invite-uses").fill("1")
    admin.locator("#invite-days").fill("7")
    admin.locator("#invite-create").click()
    expect(admin.locator("#invite-secret")).to_be_visible()
    code = admin.locator("#invite-secret-value").input_value()
    assert len(code) >= 8, code
    expect(admin.locator(".invite-item[data-state=active]").first).to_be_visible()
    if phone:
        no_horizontal_overflow(admin)

    # A new user signs up with it and generates: the chip counts down.
    user = open_page(spend_server, **options)
    name = unique_name("fam")
    user.locator("#login-btn").click()
    user.locator("#tab-signup").click()
    user.locator("#auth-username").fill(name)
    user.locator("#auth-password").fill(PASSWORD)
    user.locator("#auth-invite").fill(code)
    user.locator("#auth-submit").click()
    expect(user.locator("#account-name")).to_have_text(name)
    expect(user.locator("#quota-chip")).to_be_visible()
    with user.expect_response("**/v1/generate") as generated:
        send(user, "a lighthouse on a cliff at dusk")
    assert generated.value.status == 202  # a background job (issue 13)
    wait_images_loaded(user, RESULT_IMAGES, 1)
    expect(user.locator("#quota-chip-text")).to_have_text(text["left_2"])
    if phone:
        box = user.locator("#quota-chip").bounding_box()
        assert box["height"] >= 44, box

    # The usage panel: one chart per figure, with a summary and a table behind it.
    user.locator("#quota-chip").click()
    panel = user.locator("#usage-dialog")
    expect(panel).to_be_visible()
    images_chart = panel.locator("svg.chart-images[role=img]")
    expect(images_chart).to_have_count(1)
    expect(images_chart).to_have_attribute("aria-label", re.compile(r"\b1\b"))
    assert images_chart.locator("rect.chart-bar").count() >= 28  # a whole month, empty days too
    expect(panel.locator("svg.chart-cost[role=img]")).to_have_count(1)
    expect(panel.locator("table.visually-hidden tbody tr")).to_have_count(
        images_chart.locator("rect.chart-bar").count()
    )
    expect(panel.locator("#usage-models table.figures tbody tr")).to_have_count(1)
    expect(panel.locator(".meter-figures").first).to_have_text(
        re.compile(rf"^1 (of|/) {DAILY_QUOTA}$")
    )
    if phone:
        no_horizontal_overflow(user)
        chart_box = images_chart.bounding_box()
        assert chart_box["width"] <= PHONE["width"], chart_box
    screenshot(user, "usage-panel.png" if case == "en-desktop" else "usage-phone-dark.png")
    user.keyboard.press("Escape")
    expect(panel).to_be_hidden()

    # The admin lowers the user's daily quota to 1: the next request is refused whole.
    admin.locator("#admin-tab-users").click()
    row = admin.locator(f"#admin-users-body tr:has(.user-name:text-is('{name}'))")
    expect(row).to_have_count(1)
    row.locator(".row-actions button").click()
    editor = admin.locator("#user-dialog")
    expect(editor).to_be_visible()
    admin.locator("#user-quota-daily").fill("1")
    admin.locator("#user-quota-save").click()
    expect(admin.locator(".toast").filter(has_text=text["quota_saved"])).to_be_visible()
    expect(row.locator(".quota-value.is-override").first).to_have_text("1")

    with user.expect_response(re.compile(r"/v1/(generate|edit)$")) as refused:
        send(user, "one more, please")  # an edit of the result: it asks for one image too
    assert refused.value.status == 429
    assert refused.value.json()["error"] == "quota_exceeded"
    card = user.locator(".error-card.is-quota")
    expect(card).to_be_visible()
    expect(card.locator(".error-note")).to_contain_text(text["resets"])
    expect(card.locator(".retry-btn")).to_have_count(0)  # a wait of hours: no retry button
    expect(user.locator("#quota-chip-text")).to_have_text(text["none"])

    # The admin disables the user: their page is logged out at the next request.
    admin.locator("#user-access").click()
    expect(row.locator(".badge-off")).to_have_text(text["disabled"])
    if case == "en-desktop":
        admin.locator("#user-dialog [data-close-dialog]").click()
        expect(editor).to_be_hidden()
        expect(admin.locator(".toast")).to_have_count(0, timeout=8000)
        screenshot(admin, "admin-panel.png")
    else:
        no_horizontal_overflow(admin)
        admin.locator("#user-dialog [data-close-dialog]").click()
        screenshot(admin, "admin-phone.png")
    goto_ready(user)
    expect(user.locator("#login-btn")).to_be_visible()
    expect(user.locator("#quota-chip")).to_be_hidden()


@pytest.fixture(scope="module")
def broke_server(tmp_path_factory):
    """A monthly budget of $0: used up from the start."""
    server = _start(
        tmp_path_factory.mktemp("spend-broke"),
        "spend-broke",
        SIGNUP_POLICY="open",
        QUOTA_DAILY_IMAGES="",
        BUDGET_MONTHLY_USD="0",
    )
    _post(
        server,
        "/auth/setup",
        {"setup_code": setup_code(server), "username": "boss", "password": PASSWORD},
    )
    yield server
    server.stop()


@pytest.mark.browser
def test_budget_banner_for_users_and_admins(broke_server, open_page):
    user = open_page(broke_server)
    sign_up_by_api(user, unique_name("fam"))
    goto_ready(user)
    banner = user.locator("#banner-budget")
    expect(banner).to_be_visible()
    expect(banner).to_contain_text("monthly budget is used up")
    expect(banner).not_to_contain_text("BUDGET_MONTHLY_USD")

    admin = open_page(broke_server, locale="zh-CN")
    log_in(admin, "boss")
    expect(admin.locator("#banner-budget")).to_contain_text("BUDGET_MONTHLY_USD")
    open_settings_button(admin, "#open-admin")
    expect(admin.locator("#admin-budget")).to_be_visible()
    expect(admin.locator("#admin-budget")).to_contain_text("预算")


@pytest.mark.browser
def test_admin_usage_tab_groups_and_links_the_csv(spend_server, open_page):
    page = open_page(spend_server)
    log_in(page, "boss")
    open_settings_button(page, "#open-admin")
    page.locator("#admin-tab-usage").click()
    csv = page.locator("#admin-csv")
    expect(csv).to_have_attribute("href", re.compile(r"format=csv"))
    expect(csv).to_have_attribute("href", re.compile(r"group_by=day"))
    expect(page.locator("#admin-usage-out svg.chart-images[role=img]")).to_have_count(1)
    page.locator("#admin-group").select_option("model")
    expect(csv).to_have_attribute("href", re.compile(r"group_by=model"))
    expect(page.locator("#admin-usage-out svg")).to_have_count(0)
    with page.expect_download() as download:
        csv.click()
    body = Path(download.value.path()).read_text(encoding="utf-8-sig")
    assert body.splitlines()[0].startswith("model,"), body[:200]
    # Keyboard: the tabs move with the arrow keys.
    page.locator("#admin-tab-usage").focus()
    page.keyboard.press("ArrowLeft")
    expect(page.locator("#admin-tab-invites")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#admin-tab-invites")).to_be_focused()


# ---- every string in both languages (no browser) -----------------------------------------------


def _keys(block: str) -> set[str]:
    return set(re.findall(r'^\s+"?([\w.]+)"?:', block, re.M))


def test_every_page_string_exists_in_english_and_chinese():
    # One table per language (app/static/js/i18n/): the page loads only its own.
    def table(name):
        source = (ROOT / "app/static/js/i18n" / name).read_text(encoding="utf-8")
        return _keys(source[source.index("export default {") :])

    en = table("en.js") | table("en-account.js")
    zh = table("zh.js") | table("zh-account.js")
    assert en == zh, {"only en": sorted(en - zh), "only zh": sorted(zh - en)}
    page = (ROOT / "app/templates/index.html").read_text(encoding="utf-8")
    used = set(re.findall(r'data-i18n(?:-[a-z-]+)?="([\w.]+)"', page))
    for path in (ROOT / "app/static/js").rglob("*.js"):
        code = path.read_text(encoding="utf-8")
        used |= set(re.findall(r'\bt\("([\w.]+)"', code))
        used |= set(re.findall(r'i18n(?:Label)?: "([\w.]+)"', code))
    assert used - en == set(), sorted(used - en)
