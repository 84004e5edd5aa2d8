"""The chat page in a real browser (issue 4's "Must show")."""

from __future__ import annotations

import re
import urllib.request

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    PASSWORD,
    PHONE,
    goto_ready,
    no_horizontal_overflow,
    png_file,
    screenshot,
    sign_up_by_api,
    sign_up_in_page,
    unique_name,
    wait_images_loaded,
)

pytestmark = pytest.mark.browser

RESULT_IMAGES = ".msg-assistant .tile img"


def send(page, prompt: str) -> None:
    page.locator("#prompt").fill(prompt)
    page.locator("#prompt").press("Enter")


def test_sign_up_generate_edit_compose_rename_reload_logout_login(any_server, open_page, tmp_path):
    page = open_page(any_server)
    offline = any_server.name == "offline"
    expect(page.locator("#provider-badge")).to_have_attribute("data-provider", any_server.name)
    expect(page.locator("#banner-offline")).to_be_visible() if offline else expect(
        page.locator("#banner-offline")
    ).to_be_hidden()
    expect(page.locator("#banner-anon")).to_be_visible()

    username = unique_name("flow")
    sign_up_in_page(page, username)
    expect(page.locator("#banner-anon")).to_be_hidden()
    expect(page.locator("#conv-empty")).to_be_visible()

    # New conversation → generate: the turn shows at once, then the image.
    page.locator("#new-conv").click()
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "generate")
    with page.expect_response("**/v1/generate") as generated:
        send(page, "A banana astronaut floating above the Earth")
        expect(page.locator(".msg-user .msg-text").first).to_have_text(
            "A banana astronaut floating above the Earth"
        )
    # The page sends a background job (issue 13) and follows it to its result.
    assert generated.value.status == 202
    wait_images_loaded(page, RESULT_IMAGES, 1)
    job = page.request.get(generated.value.headers["location"]).json()
    assert job["status"] == "succeeded"
    first_id = job["result"]["image_ids"][0]
    expect(page.locator(".conv-item")).to_have_count(1)
    expect(page.locator(".conv-item .conv-title")).to_have_text(
        "A banana astronaut floating above the Earth"
    )

    # The continue chip: the next prompt edits that result (source_image_ids).
    expect(page.locator("#editing-chip")).to_be_visible()
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "edit")
    with page.expect_request("**/v1/edit") as edit_request:
        send(page, "make it grayscale and add a border")
    body = edit_request.value.post_data_buffer.decode("latin-1")
    assert re.search(rf'name="source_image_ids"\r\n\r\n{first_id}\r\n', body), body[:500]
    wait_images_loaded(page, RESULT_IMAGES, 2)

    # Attach two images (and drop the chip): compose.
    page.locator("#editing-chip .attachment-remove").click()
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "generate")
    page.locator("#file-input").set_input_files(
        [
            png_file(tmp_path, "red.png", (220, 40, 40)),
            png_file(tmp_path, "blue.png", (40, 80, 220)),
        ]
    )
    expect(page.locator(".attachment")).to_have_count(2)
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "compose")
    with page.expect_response("**/v1/compose") as composed:
        send(page, "blend these two images")
    assert composed.value.status == 202, composed.value.text()
    wait_images_loaded(page, RESULT_IMAGES, 3)
    wait_images_loaded(page, ".msg-user .msg-inputs img", 3)  # 1 edit input + 2 compose
    expect(page.locator(".attachment:not(#editing-chip)")).to_have_count(0)

    # Rename inline.
    page.locator(".conv-item [data-action=rename]").click()
    page.locator(".conv-rename").fill("Banana series")
    page.locator(".conv-rename").press("Enter")
    expect(page.locator(".conv-item .conv-title")).to_have_text("Banana series")
    expect(page.locator("#thread-title")).to_have_text("Banana series")

    # Reload: history and images come back from the server.
    goto_ready(page)
    expect(page.locator("#account-name")).to_have_text(username)
    expect(page.locator("#thread-title")).to_have_text("Banana series")
    expect(page.locator(".msg-user")).to_have_count(3)
    wait_images_loaded(page, RESULT_IMAGES, 3)
    wait_images_loaded(page, ".conv-item .conv-thumb", 1)
    expect(page.locator(".msg-user .msg-text").nth(1)).to_have_text(
        "make it grayscale and add a border"
    )
    # The last result is again what the next prompt edits.
    expect(page.locator("#editing-chip")).to_be_visible()

    # A stored image opens full size and downloads as a PNG.
    page.locator(".tile-open").last.click()
    expect(page.locator("#viewer")).to_be_visible()
    with page.expect_download() as download:
        page.locator("#viewer-actions [data-action=download]").click()
    assert download.value.suggested_filename.endswith(".png")
    with open(download.value.path(), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"
    page.keyboard.press("Escape")
    expect(page.locator("#viewer")).to_be_hidden()

    # Log out: the page forgets the account and its history.
    page.locator("#logout-btn").click()
    page.locator("#confirm-ok").click()  # "Log out?" asks first
    expect(page.locator("#login-btn")).to_be_visible()
    expect(page.locator(".msg")).to_have_count(0)
    expect(page.locator("#banner-anon")).to_be_visible()

    # Log in again: the conversation is listed and reopened.
    page.locator("#login-btn").click()
    page.locator("#auth-username").fill(username)
    page.locator("#auth-password").fill(PASSWORD)
    page.locator("#auth-submit").click()
    expect(page.locator("#account-name")).to_have_text(username)
    expect(page.locator(".conv-item .conv-title")).to_have_text("Banana series")
    wait_images_loaded(page, RESULT_IMAGES, 3)


def test_rate_limit_shows_message_and_counts_down(gemini_server, gemini_fake, open_page, console):
    console.allow(r"status of 429")
    page = open_page(gemini_server)
    gemini_fake.reset()
    gemini_fake.enqueue({"fault": "rate_limited", "retry_delay": "3s"})
    with page.expect_response("**/v1/generate") as limited:
        send(page, "a banana under a rain cloud")
    assert limited.value.status == 202  # the job fails, not the request (issue 13)
    card = page.locator(".error-card")
    expect(card).to_be_visible()
    job = page.request.get(limited.value.headers["location"]).json()
    assert job["status"] == "failed"
    # The upstream's RetryInfo, not the limiter's window (docs/ui-backend-requests.md).
    assert job["error"]["retry_after"] == 3, job["error"]
    message = job["error"]["message"]

    expect(card.locator(".error-message")).to_have_text(message)
    expect(card.locator(".error-code")).to_have_text("upstream_rate_limited")
    retry = card.locator(".retry-btn")
    expect(retry).to_be_disabled()
    expect(retry).to_have_text(re.compile(r"Retry in [123] s"))
    expect(retry).to_have_text(re.compile(r"Retry in [12] s"), timeout=2500)
    expect(retry).to_be_enabled(timeout=5000)
    expect(retry).to_have_text("Retry")

    with page.expect_response("**/v1/generate") as retried:
        retry.click()
    assert retried.value.status == 202
    expect(page.locator(".error-card")).to_have_count(0)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-user")).to_have_count(1)  # the retry reuses the turn


def test_ime_enter_does_not_send(offline_server, open_page):
    page = open_page(offline_server)
    sent = []
    page.on("request", lambda request: "/v1/" in request.url and sent.append(request.url))
    prompt = page.locator("#prompt")
    prompt.fill("你好")

    # Enter that confirms an IME candidate: isComposing on the event itself…
    prompt.dispatch_event("keydown", {"key": "Enter", "code": "Enter", "isComposing": True})
    # …or between compositionstart and compositionend.
    prompt.dispatch_event("compositionstart", {"data": ""})
    prompt.dispatch_event("keydown", {"key": "Enter", "code": "Enter"})
    prompt.dispatch_event("compositionend", {"data": "你好"})
    page.wait_for_timeout(300)
    assert sent == []
    expect(prompt).to_have_value("你好")

    # Shift+Enter breaks the line; plain Enter sends.
    prompt.press("End")
    prompt.press("Shift+Enter")
    prompt.type("香蕉")
    expect(prompt).to_have_value("你好\n香蕉")
    assert sent == []
    with page.expect_response("**/v1/generate"):
        prompt.press("Enter")
    expect(page.locator(".msg-user .msg-text")).to_have_text("你好\n香蕉")
    expect(prompt).to_have_value("")
    wait_images_loaded(page, RESULT_IMAGES, 1)


def test_phone_layout_has_drawers_and_no_horizontal_overflow(offline_server, open_page):
    page = open_page(offline_server, viewport=PHONE, is_mobile=True, has_touch=True)
    sign_up_by_api(page, unique_name("phone"))
    goto_ready(page)
    no_horizontal_overflow(page)

    sidebar, settings = page.locator("#sidebar"), page.locator("#settings")
    expect(sidebar).to_be_hidden()
    expect(settings).to_be_hidden()
    expect(page.locator("#prompt")).to_be_visible()

    send(page, "a lighthouse on a cliff at dusk")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    no_horizontal_overflow(page)

    # The conversation drawer slides in, lists the new conversation, and closes.
    page.locator("#open-sidebar").click()
    expect(sidebar).to_be_visible()
    expect(page.locator("#open-sidebar")).to_have_attribute("aria-expanded", "true")
    expect(page.locator(".conv-item")).to_have_count(1)
    expect(sidebar).to_be_in_viewport(ratio=1)
    no_horizontal_overflow(page)
    page.keyboard.press("Escape")
    expect(sidebar).to_be_hidden()

    # The settings drawer, closed by tapping the backdrop.
    page.locator("#open-settings").click()
    expect(settings).to_be_visible()
    expect(settings).to_be_in_viewport(ratio=1)
    expect(page.locator("#set-model")).to_be_visible()
    no_horizontal_overflow(page)
    page.locator("#backdrop").click(position={"x": 10, "y": 400})
    expect(settings).to_be_hidden()

    # Opening a conversation from the drawer closes it.
    page.locator("#new-conv").dispatch_event("click")
    expect(page.locator(".msg")).to_have_count(0)
    page.locator("#open-sidebar").click()
    page.locator(".conv-open").first.click()
    expect(sidebar).to_be_hidden()
    wait_images_loaded(page, RESULT_IMAGES, 1)
    page.locator("#dismiss-offline").click()
    expect(page.locator("#banner-offline")).to_be_hidden()
    no_horizontal_overflow(page)
    page.locator("#prompt").blur()
    screenshot(page, "phone.png")


def test_language_toggle_translates_the_page_and_errors(offline_server, open_page, console):
    console.allow(r"status of 401")
    page = open_page(offline_server)
    expect(page.locator("html")).to_have_attribute("lang", "en")
    expect(page.locator("#new-conv")).to_have_text("New conversation")
    expect(page.locator("#prompt")).to_have_attribute(
        "placeholder", "Describe an image, or what to change…"
    )

    send(page, "a banana boat")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".kind-tag")).to_have_text("Generate")

    page.locator("#lang-toggle").click()
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    # What is already on the page follows too.
    expect(page.locator(".kind-tag")).to_have_text("生成")
    expect(page.locator(".not-saved")).to_have_text("未保存")
    expect(page.locator(".tile [data-action=download]")).to_have_attribute("aria-label", "下载")
    expect(page.locator("#new-conv")).to_have_text("新建对话")
    expect(page.locator("#prompt")).to_have_attribute("placeholder", "描述一幅图片，或想要的修改…")
    expect(page.locator("#mode-pill .mode-name")).to_have_text("编辑")  # the result is next
    expect(page.locator("label[for=set-model]")).to_have_text("模型")

    # The choice persists, and the server's errors come in the same language.
    goto_ready(page)
    expect(page.locator("#new-conv")).to_have_text("新建对话")
    page.locator("#login-btn").click()
    page.locator("#auth-username").fill("nobody_here")
    page.locator("#auth-password").fill("wrong-password-1")
    with page.expect_response("**/auth/login") as failed:
        page.locator("#auth-submit").click()
    assert failed.value.status == 401
    error = page.locator("#auth-error")
    expect(error).to_have_text(failed.value.json()["message"])
    expect(error).to_have_text(re.compile(r"[\u4e00-\u9fff]"))
    page.keyboard.press("Escape")

    page.locator("#lang-toggle").click()
    expect(page.locator("#new-conv")).to_have_text("New conversation")


def test_browser_language_is_followed(offline_server, open_page):
    page = open_page(offline_server, locale="zh-CN")
    expect(page.locator("html")).to_have_attribute("lang", "zh-CN")
    expect(page.locator("#login-btn")).to_have_text("登录")


def test_anonymous_generation_downloads_a_png(offline_server, open_page):
    page = open_page(offline_server)
    send(page, "a tiny yellow submarine")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-user .not-saved")).to_be_visible()
    tile = page.locator(".tile").first
    tile.hover()
    with page.expect_download() as download:
        tile.locator("[data-action=download]").click()
    name = download.value.suggested_filename
    assert re.fullmatch(r"nano-banana_a-tiny-yellow-submarine_\d{8}-\d{6}\.png", name), name
    with open(download.value.path(), "rb") as fh:
        assert fh.read(8) == b"\x89PNG\r\n\x1a\n"

    # Copy puts a PNG on the clipboard.
    page.context.grant_permissions(["clipboard-read", "clipboard-write"], origin=page.url)
    tile.hover()
    tile.locator("[data-action=copy]").click()
    expect(page.locator(".toast-success")).to_have_text("Image copied to the clipboard")
    types = page.evaluate("async () => (await navigator.clipboard.read())[0].types")
    assert "image/png" in types

    # Anonymous results are local blobs: the continue chip sends the result
    # itself as the file to edit (an edit with no image would be a 400).
    expect(page.locator("#editing-chip")).to_be_visible()
    with page.expect_response("**/v1/edit") as edited:
        send(page, "rotate 90")
    assert edited.value.status == 202, edited.value.text()
    wait_images_loaded(page, ".msg-user .msg-inputs img", 1)
    wait_images_loaded(page, RESULT_IMAGES, 2)


def test_settings_persist_and_reach_the_request(offline_server, open_page):
    page = open_page(offline_server)
    page.locator("#set-model").select_option("gemini-2.5-flash-image")
    # That model has no image sizes: the size field is disabled.
    expect(page.locator("#set-size")).to_be_disabled()
    page.locator("#set-aspect").select_option("16:9")
    page.locator("label[for=set-count-2]").click()
    page.locator("#set-temperature").fill("0.7")
    page.locator("#set-seed").fill("1234")

    goto_ready(page)
    expect(page.locator("#set-model")).to_have_value("gemini-2.5-flash-image")
    expect(page.locator("#set-aspect")).to_have_value("16:9")
    expect(page.locator("#set-count-2")).to_be_checked()
    expect(page.locator("#set-temperature")).to_have_value("0.7")
    expect(page.locator("#set-seed")).to_have_value("1234")

    with page.expect_request("**/v1/generate") as generated:
        send(page, "two bananas in a wide landscape")
    body = generated.value.post_data_json
    assert body == {
        "prompt": "two bananas in a wide landscape",
        "model": "gemini-2.5-flash-image",
        "aspect_ratio": "16:9",
        "candidate_count": 2,
        "temperature": 0.7,
        "seed": 1234,
    }
    wait_images_loaded(page, RESULT_IMAGES, 2)

    # An out-of-range value is flagged and blocks sending.
    page.locator("#set-temperature").fill("3")
    expect(page.locator("#set-temperature")).to_have_attribute("aria-invalid", "true")
    expect(page.locator("#settings-error")).to_be_visible()

    page.locator("#settings-reset").click()
    expect(page.locator("#set-model")).to_have_value("gemini-3.1-flash-image")
    expect(page.locator("#set-aspect")).to_have_value("")
    expect(page.locator("#set-count-1")).to_be_checked()
    expect(page.locator("#set-temperature")).to_have_value("")
    expect(page.locator("#settings-error")).to_be_hidden()
    page.locator("#seed-random").click()
    expect(page.locator("#set-seed")).to_have_value(re.compile(r"^\d+$"))

    # On a wide screen the panel folds away, and stays folded after a reload.
    page.locator("#open-settings").click()
    expect(page.locator("#settings")).to_be_hidden()
    expect(page.locator("#open-settings")).to_have_attribute("aria-expanded", "false")
    goto_ready(page)
    expect(page.locator("#settings")).to_be_hidden()
    page.locator("#open-settings").click()
    expect(page.locator("#settings")).to_be_visible()


def test_sidebar_lists_filters_and_deletes_without_a_request_per_conversation(
    offline_server, open_page
):
    page = open_page(offline_server)
    session = sign_up_by_api(page, unique_name("list"))
    headers = {"X-CSRF-Token": session["csrf_token"]}
    for title in ("Apples", "Bananas", "Cherries"):
        response = page.request.post("/conversations", data={"title": title}, headers=headers)
        assert response.status == 201

    requests = []
    page.on("request", lambda request: requests.append(request.url))
    goto_ready(page)
    expect(page.locator(".conv-item")).to_have_count(3)
    expect(page.locator(".conv-title")).to_have_text(["Cherries", "Bananas", "Apples"])
    assert not [url for url in requests if "/messages" in url], requests
    assert len([url for url in requests if "/conversations?" in url]) == 1, requests

    page.locator("#conv-filter").fill("nan")
    expect(page.locator(".conv-title")).to_have_text(["Bananas"])
    page.locator("#conv-filter").fill("")
    expect(page.locator(".conv-item")).to_have_count(3)

    # Delete asks first; cancelling keeps it.
    item = page.locator(".conv-item", has_text="Apples")
    item.hover()
    item.locator("[data-action=delete]").click()
    expect(page.locator("#confirm-dialog")).to_be_visible()
    page.locator("#confirm-cancel").click()
    expect(page.locator(".conv-item")).to_have_count(3)
    item.hover()
    item.locator("[data-action=delete]").click()
    page.locator("#confirm-ok").click()
    expect(page.locator(".conv-title")).to_have_text(["Cherries", "Bananas"])

    # Keyboard: Tab reaches the list, Enter opens a conversation.
    page.locator(".conv-open").first.focus()
    page.keyboard.press("Enter")
    expect(page.locator("#thread-title")).to_have_text("Cherries")
    expect(page.locator(".conv-item.is-current .conv-title")).to_have_text("Cherries")


def test_screenshots_light_and_dark(offline_server, open_page):
    """docs/screenshots/desktop-{light,dark}.png: a grid of four results, and
    the next prompt about to edit one of them."""
    page = open_page(offline_server)
    sign_up_by_api(page, unique_name("banana"))
    goto_ready(page)
    page.locator("#dismiss-offline").click()
    page.locator("label[for=set-count-4]").click()
    page.locator("#set-aspect").select_option("16:9")
    send(page, "A banana astronaut floating above the Earth, watercolor")
    wait_images_loaded(page, RESULT_IMAGES, 4)
    # Pick the third result to edit instead of the first.
    page.locator("#editing-chip .attachment-remove").click()
    page.locator(".tile [data-action=wand]").nth(2).dispatch_event("click")
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "edit")
    page.locator("#prompt").fill("Make the sky a deep sunset orange")
    expect(page.locator(".toast")).to_have_count(0, timeout=5000)
    page.mouse.move(0, 0)
    screenshot(page, "desktop-light.png")

    page.locator("#theme-toggle").click()
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")
    page.mouse.move(0, 0)
    screenshot(page, "desktop-dark.png")
    # The choice persists over the system's light scheme.
    goto_ready(page)
    expect(page.locator("html")).to_have_attribute("data-theme", "dark")


def test_working_placeholder_counts_seconds_and_can_be_cancelled(
    gemini_server, gemini_fake, open_page
):
    page = open_page(gemini_server)
    gemini_fake.reset()
    gemini_fake.latency = 2.5
    try:
        # Both job workers busy: the page's job waits in the queue, where a
        # cancel stops it before it reaches the upstream (a running job keeps
        # what its call in flight makes: tests/e2e/test_jobs_page.py).
        for n in range(2):
            busy = page.request.post(
                "/v1/generate",
                data={"prompt": f"a busy banana {n}"},
                headers={"Prefer": "respond-async"},
            )
            assert busy.status == 202, busy.text()
        send(page, "a very slow banana")
        pending = page.locator(".msg-assistant.pending")
        expect(pending).to_be_visible()
        expect(page.locator(".msg-user .msg-text")).to_have_text("a very slow banana")
        expect(pending.locator(".job-status")).to_have_text("Queued · #1 in line")
        pending.get_by_role("button", name="Cancel").click()
        expect(pending).to_have_count(0)
        expect(page.locator(".error-card.is-cancelled .error-message")).to_have_text("Cancelled.")
        with page.expect_response("**/v1/generate"):
            page.locator(".error-card .retry-btn").click()
        # Once a worker takes it, the clock counts the seconds since.
        expect(pending.locator(".job-status")).to_have_text("Generating", timeout=10_000)
        expect(pending.locator(".elapsed")).to_have_text("0:01", timeout=3000)
    finally:
        gemini_fake.latency = 0
    wait_images_loaded(page, RESULT_IMAGES, 1)
    assert gemini_fake.calls == 3  # the two busy ones and the retry: never the cancelled one


def test_older_messages_load_when_scrolling_up(offline_server, open_page):
    page = open_page(offline_server)
    session = sign_up_by_api(page, unique_name("long"))
    headers = {"X-CSRF-Token": session["csrf_token"]}
    conv = page.request.post("/conversations", data={"title": "Long one"}, headers=headers).json()
    turns = 17  # 34 messages: more than one page of 30
    for n in range(turns):
        response = page.request.post(
            "/v1/generate",
            data={"prompt": f"banana number {n}", "conv_id": conv["id"]},
            headers=headers,
        )
        assert response.status == 200, response.text()

    goto_ready(page)
    page.locator(".conv-open").first.click()
    expect(page.locator(".msg-user").last).to_have_text(re.compile(f"banana number {turns - 1}"))
    expect(page.locator(".msg")).to_have_count(30)
    # The newest is in view at the bottom; scrolling up fetches the rest.
    page.locator("#thread").evaluate("el => { el.scrollTop = 0; }")
    expect(page.locator(".msg")).to_have_count(2 * turns)
    expect(page.locator(".msg-user .msg-text").first).to_have_text("banana number 0")


PASTE_AND_DROP = """
async ([bytes, target]) => {
  const file = (name) => new File([new Uint8Array(bytes)], name, { type: "image/png" });
  const transfer = (name) => {
    const data = new DataTransfer();
    data.items.add(file(name));
    return data;
  };
  const prompt = document.querySelector("#prompt");
  if (target === "paste") {
    prompt.dispatchEvent(new ClipboardEvent("paste", {
      clipboardData: transfer("pasted.png"), bubbles: true, cancelable: true }));
  } else {
    const dataTransfer = transfer("dropped.png");
    document.body.dispatchEvent(new DragEvent("dragenter", { dataTransfer, bubbles: true }));
    const overlayShown = !document.querySelector("#drop-overlay").hidden;
    document.body.dispatchEvent(new DragEvent("drop", {
      dataTransfer, bubbles: true, cancelable: true }));
    return overlayShown;
  }
}
"""


def test_paste_and_drop_attach_images(offline_server, open_page, tmp_path):
    page = open_page(offline_server)
    data = list(png_file(tmp_path, "x.png", (250, 200, 60)).read_bytes())
    page.evaluate(PASTE_AND_DROP, [data, "paste"])
    expect(page.locator(".attachment")).to_have_count(1)
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "edit")
    assert page.evaluate(PASTE_AND_DROP, [data, "drop"]) is True
    expect(page.locator("#drop-overlay")).to_be_hidden()
    expect(page.locator(".attachment")).to_have_count(2)
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "compose")
    expect(page.locator("#mode-pill .mode-hint")).to_have_text("Combine 2 images")
    page.get_by_role("button", name="Remove dropped.png").click()
    expect(page.locator(".attachment")).to_have_count(1)
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "edit")
    with page.expect_response("**/v1/edit") as edited:
        send(page, "make it blue")
    assert edited.value.status == 202
    wait_images_loaded(page, RESULT_IMAGES, 1)


def test_api_tokens_in_the_settings_panel(offline_server, open_page):
    page = open_page(offline_server)
    expect(page.locator("#tokens")).to_be_hidden()
    sign_up_by_api(page, unique_name("tok"))
    goto_ready(page)
    expect(page.locator("#tokens")).to_be_visible()
    expect(page.locator("#token-list")).to_have_text("No tokens yet.")

    page.locator("#token-name").fill("my script")
    page.locator("#token-form button[type=submit]").click()
    secret = page.locator("#token-secret-value")
    expect(secret).to_have_value(re.compile(r"^nb_"))
    token = secret.input_value()
    expect(page.locator(".token-item .token-name")).to_have_text("my script")

    # The secret works as a bearer token, from outside the browser.
    request = urllib.request.Request(
        offline_server.url("/conversations"), headers={"Authorization": f"Bearer {token}"}
    )
    with urllib.request.urlopen(request, timeout=5) as response:
        assert response.status == 200

    page.locator(".token-item [aria-label='Revoke: my script']").click()
    page.locator("#confirm-ok").click()
    expect(page.locator(".token-item")).to_have_count(0)
    expect(page.locator("#token-list")).to_have_text("No tokens yet.")


def test_password_change_in_the_settings_panel(offline_server, open_page, browser, console):
    console.allow(r"status of 401")  # the wrong current password, on purpose
    page = open_page(offline_server)
    expect(page.locator("#password-section")).to_be_hidden()
    username = unique_name("pw")
    sign_up_by_api(page, username)
    goto_ready(page)
    # Another browser logged in as the same user, to see it signed out.
    other = browser.new_context(base_url=offline_server.url())
    assert other.request.post("/auth/login", data={"username": username, "password": PASSWORD}).ok
    expect(page.locator("#password-section")).to_be_visible()

    page.locator("#password-current").fill("not-my-password")
    page.locator("#password-new").fill("brand-new-pass-2")
    page.locator("#password-form button[type=submit]").click()
    expect(page.locator(".toast").last).to_contain_text("Wrong username or password")

    page.locator("#password-current").fill(PASSWORD)
    page.locator("#password-new").fill("brand-new-pass-2")
    page.locator("#password-form button[type=submit]").click()
    expect(page.locator(".toast").last).to_contain_text("Password changed")
    # This page carries on (new session, new CSRF token): a write works.
    expect(page.locator("#account-name")).to_have_text(username)
    assert page.evaluate("fetch('/conversations').then(r => r.status)") == 200
    assert other.request.get("/conversations").status == 401
    other.close()

    page.locator("#logout-btn").click()
    page.locator("#confirm-ok").click()  # "Log out?" asks first

    page.locator("#login-btn").click()
    page.locator("#auth-username").fill(username)
    page.locator("#auth-password").fill("brand-new-pass-2")
    page.locator("#auth-submit").click()
    expect(page.locator("#account-name")).to_have_text(username)
