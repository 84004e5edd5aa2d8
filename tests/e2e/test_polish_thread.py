"""Issue 17, the thread, the composer, the sidebar and the login dialog
(points 1, 2, 3, 7, 8, 9, 11, 12): a generation belongs to its conversation,
a cancel says what it did, a login keeps what was made before it, what gets
edited is what the user chose, errors fit their wait, a failed turn keeps its
prompt and is one turn, the offline engine says so, and the login dialog
keeps the name and opens the last conversation."""

from __future__ import annotations

import re

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    PASSWORD,
    goto_ready,
    no_horizontal_overflow,
    png_file,
    sign_up_by_api,
    unique_name,
    wait_images_loaded,
)
from tests.e2e.jobs_support import (
    PENDING,
    RESULT_IMAGES,
    send,
    slow,
    submit,
)
from tests.fake_gemini import blocked_prompt, ok, quota_per_day, rate_limited, server_error

pytestmark = pytest.mark.browser

PHONE_SE = {"width": 375, "height": 667}
ZH = "zh-CN"


# Chromium does not report a multipart body holding files: the page's fetch
# writes down each form it sends (names, values, and the names of the files).
RECORD_FORMS = """
(() => {
  window.__forms = [];
  const send = window.fetch;
  window.fetch = function (input, init = {}) {
    if (init.body instanceof FormData) {
      const fields = [...init.body.entries()].map(([name, value]) =>
        [name, value instanceof File ? { file: value.name } : value]);
      window.__forms.push({ url: String(input), fields });
    }
    return send.call(this, input, init);
  };
})();
"""


def record_forms(page) -> None:
    page.add_init_script(RECORD_FORMS)
    goto_ready(page)


def last_form(page, path: str) -> dict[str, list]:
    """The last form sent to `path`: field name → values (files by name)."""
    forms = [form for form in page.evaluate("window.__forms") if form["url"].endswith(path)]
    assert forms, f"no form sent to {path}"
    fields: dict[str, list] = {}
    for name, value in forms[-1]["fields"]:
        fields.setdefault(name, []).append(value["file"] if isinstance(value, dict) else value)
    return fields


# ---- 1. a generation belongs to its conversation ---------------------------------------------


@pytest.mark.parametrize("locale", ["en-US", ZH])
def test_a_job_runs_on_in_its_own_conversation_while_another_is_used(
    gemini_server, fake, open_page, locale
):
    page = open_page(gemini_server, locale=locale)
    sign_up_by_api(page, unique_name("owner"))
    goto_ready(page)
    fake.script([slow(7), ok()])

    first = submit(page, "a slow banana in the first conversation")
    row_a = page.locator(f".conv-item[data-id='{first['conversation_id']}']")
    # Marked in the list at once, under its prompt rather than "New conversation".
    expect(row_a).to_have_class(re.compile(r"\bis-working\b"))
    expect(row_a.locator(".conv-title")).to_have_text("a slow banana in the first conversation")
    working = "Generating…" if locale == "en-US" else "生成中…"
    expect(row_a.locator(".conv-working")).to_have_attribute("title", working)
    expect(row_a.locator(".conv-sub")).to_contain_text(working)

    # Another conversation is usable at once: no "please wait", its answer lands there.
    page.locator("#new-conv").click()
    second = submit(page, "a quick banana in the second conversation")
    assert second["conversation_id"] != first["conversation_id"]
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".toast")).to_have_count(0)
    row_b = page.locator(f".conv-item[data-id='{second['conversation_id']}']")
    expect(row_b).not_to_have_class(re.compile(r"\bis-working\b"))
    expect(row_a).to_have_class(re.compile(r"\bis-working\b"))

    # Back in the first: its prompt and its progress.
    row_a.locator(".conv-open").click()
    expect(page.locator(".msg-user .msg-text")).to_have_text(
        ["a slow banana in the first conversation"]
    )
    expect(page.locator(PENDING)).to_have_attribute("data-state", "running")

    # Over to the second again while the first finishes: the mark clears, the
    # first's row shows its new image, and the second's thread is untouched.
    row_b.locator(".conv-open").click()
    expect(page.locator(".msg-user .msg-text")).to_have_text(
        ["a quick banana in the second conversation"]
    )
    expect(row_a).not_to_have_class(re.compile(r"\bis-working\b"), timeout=20_000)
    wait_images_loaded(page, f".conv-item[data-id='{first['conversation_id']}'] img.conv-thumb", 1)
    expect(page.locator(".msg-assistant")).to_have_count(1)
    expect(page.locator(PENDING)).to_have_count(0)

    # And the result is where it belongs.
    row_a.locator(".conv-open").click()
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-user")).to_have_count(1)
    expect(page.locator(PENDING)).to_have_count(0)
    assert fake.calls == 2


def test_the_mark_shows_in_the_phone_drawer(gemini_server, fake, open_page):
    page = open_page(gemini_server, viewport=PHONE_SE, is_mobile=True, has_touch=True)
    sign_up_by_api(page, unique_name("drawer"))
    goto_ready(page)
    fake.enqueue(slow(4))
    job = submit(page, "a banana seen from the drawer")
    page.locator("#open-sidebar").click()
    row = page.locator(f".conv-item[data-id='{job['conversation_id']}']")
    mark = row.locator(".conv-working")
    expect(mark).to_be_visible()
    box = mark.bounding_box()
    thumb = row.locator(".conv-thumb").bounding_box()
    # It covers the thumbnail: nothing else in the row moves for it.
    assert (
        box and thumb and abs(box["x"] - thumb["x"]) < 1 and abs(box["width"] - thumb["width"]) < 1
    )
    no_horizontal_overflow(page)
    expect(row.locator(".conv-working-text")).to_be_visible()
    expect(mark).to_have_count(0, timeout=15_000)
    expect(row.locator(".conv-working-text")).to_have_count(0)


def test_an_anonymous_job_stays_in_view_after_new_conversation(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    fake.enqueue(slow(3))
    submit(page, "an anonymous banana on its way")
    expect(page.locator(PENDING)).to_have_attribute("data-state", "running")
    page.locator("#new-conv").click()
    # Without an account there is only this thread: the unfinished job is in it.
    expect(page.locator(".msg-user .msg-text")).to_have_text(["an anonymous banana on its way"])
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(PENDING)).to_have_count(0)
    assert fake.calls == 1


# ---- 2. cancel means cancel ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "note"),
    [("en-US", "Nothing was sent, so nothing was billed."), (ZH, "请求尚未发出，不会计费。")],
)
def test_cancelling_a_queued_job_says_nothing_was_sent(
    one_worker_server, fake, open_page, locale, note
):
    page = open_page(one_worker_server, locale=locale)
    sign_up_by_api(page, unique_name("queued"))
    goto_ready(page)
    fake.enqueue(slow(3))
    submit(page, "the banana in front")
    expect(page.locator(PENDING).first).to_have_attribute("data-state", "running")
    submit(page, "the banana in line")
    waiting = page.locator(PENDING).nth(1)
    expect(waiting).to_have_attribute("data-state", "queued")
    waiting.locator(".job-cancel").click()
    card = page.locator(".error-card.is-cancelled")
    expect(card.locator(".error-note")).to_have_text(note)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    assert fake.calls == 1


def test_cancelling_while_the_request_is_on_its_way_cancels_the_job(
    one_worker_server, fake, open_page
):
    """A cancel before the 202 waits for the job and cancels it: an aborted
    upload may still have made one, which would then run and be billed."""
    page = open_page(one_worker_server)
    fake.enqueue(slow(3))
    submit(page, "a banana keeping the worker busy")
    expect(page.locator(PENDING)).to_have_attribute("data-state", "running")
    held = []
    page.route("**/v1/generate", lambda route: held.append(route))
    send(page, "a banana cancelled in the doorway")
    pending = page.locator(PENDING).nth(1)
    expect(pending).to_have_attribute("data-state", "sending")
    pending.locator(".job-cancel").click()
    expect(pending).to_have_attribute("data-state", "cancelling")
    assert len(held) == 1
    with page.expect_response(lambda r: r.request.method == "DELETE") as deleted:
        held[0].continue_()
    assert deleted.value.status == 200, deleted.value.text()
    assert deleted.value.json()["status"] == "canceled"
    card = page.locator(".error-card.is-cancelled")
    expect(card.locator(".error-message")).to_have_text("Cancelled.")
    expect(card.locator(".error-note")).to_have_text("Nothing was sent, so nothing was billed.")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    page.wait_for_timeout(500)
    assert fake.calls == 1  # only the first


def test_a_cancel_during_the_call_shows_what_was_billed_and_edits_nothing(
    gemini_server, fake, open_page
):
    page = open_page(gemini_server)
    sign_up_by_api(page, unique_name("late"))
    goto_ready(page)
    fake.enqueue(slow(3))
    job = submit(page, "a banana stopped too late")
    pending = page.locator(PENDING)
    expect(pending).to_have_attribute("data-state", "running")
    pending.locator(".job-cancel").click()
    wait_images_loaded(page, RESULT_IMAGES, 1)
    answer = page.locator(".msg-assistant.is-stopped")
    expect(answer.locator(".turn-note")).to_have_text(
        "Stopped after the current image; it was billed."
    )
    assert page.request.get(f"/v1/jobs/{job['id']}").json()["status"] == "canceled"
    # Never the editing target: the next prompt generates anew.
    expect(page.locator("#editing-chip")).to_have_count(0)
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "generate")
    expect(page.locator("#prompt")).to_have_value("")
    assert fake.calls == 1


# ---- 3. logging in keeps what was made while logged out ---------------------------------------


@pytest.mark.parametrize(
    ("locale", "warning", "kept"),
    [
        ("en-US", "You made 2 prompts here without an account.", "Made before you logged in"),
        (ZH, "你未登录时在这里发送了 2 条提示词", "以上内容是登录前生成的"),
    ],
)
def test_logging_in_keeps_the_anonymous_turns_on_the_page(
    offline_server, open_page, locale, warning, kept
):
    page = open_page(offline_server, locale=locale)
    for count, prompt in enumerate(("a banana before the account", "a pear before the account")):
        send(page, prompt)
        wait_images_loaded(page, RESULT_IMAGES, count + 1)
    editing = page.locator("#editing-chip img").get_attribute("src")

    # The banner promises history: the dialog says first what happens to these.
    page.locator("#banner-anon [data-action=login]").click()
    note = page.locator("#auth-unsaved")
    expect(note).to_be_visible()
    expect(note).to_contain_text(warning)
    page.locator("#auth-switch").click()
    username = unique_name("kept")
    page.locator("#auth-username").fill(username)
    page.locator("#auth-password").fill(PASSWORD)
    page.locator("#auth-submit").click()
    expect(page.locator("#account-name")).to_have_text(username)

    # Still there, saying they are not saved, and still what the next prompt edits.
    expect(page.locator(".msg-user")).to_have_count(2)
    wait_images_loaded(page, RESULT_IMAGES, 2)
    expect(page.locator(".unsaved-note")).to_contain_text(kept)
    expect(page.locator("#editing-chip img")).to_have_attribute("src", editing)

    # Opening another conversation lets them go, as said.
    page.locator("#new-conv").click()
    expect(page.locator(".msg")).to_have_count(0)
    expect(page.locator(".unsaved-note")).to_have_count(0)


@pytest.mark.parametrize(("locale", "label"), [("en-US", "Save them"), (ZH, "保存到新对话")])
def test_the_anonymous_turns_can_be_saved_into_a_new_conversation_after_login(
    offline_server, open_page, locale, label
):
    page = open_page(offline_server, locale=locale)
    prompts = ("a banana to keep", "a pear to keep")
    for count, prompt in enumerate(prompts):
        send(page, prompt)
        wait_images_loaded(page, RESULT_IMAGES, count + 1)
    page.locator("#banner-anon [data-action=login]").click()
    page.locator("#auth-switch").click()
    username = unique_name("saver")
    page.locator("#auth-username").fill(username)
    page.locator("#auth-password").fill(PASSWORD)
    page.locator("#auth-submit").click()
    expect(page.locator("#account-name")).to_have_text(username)

    saves = []
    page.on(
        "response",
        lambda response: saves.append(response.status) if response.url.endswith("/save") else None,
    )
    page.locator(".unsaved-note .save-unsaved").filter(has_text=label).click()

    # A new conversation, opened, holding both turns in order, stored (a reload shows them).
    expect(page.locator(".conv-item")).to_have_count(1)
    expect(page.locator(".unsaved-note")).to_have_count(0)
    expect(page.locator(".msg-user")).to_have_count(2)
    assert saves == [200, 200]
    goto_ready(page)
    page.locator(".conv-item").first.click()
    expect(page.locator(".msg-user .msg-text")).to_have_text(list(prompts))
    wait_images_loaded(page, RESULT_IMAGES, 2)


def test_no_warning_without_anonymous_turns(offline_server, open_page):
    page = open_page(offline_server)
    page.locator("#login-btn").click()
    expect(page.locator("#auth-dialog")).to_be_visible()
    expect(page.locator("#auth-unsaved")).to_be_hidden()


# ---- 7. what gets edited is what the user chose -----------------------------------------------


def test_use_as_input_replaces_the_continuing_image(offline_server, open_page):
    page = open_page(offline_server)
    sign_up_by_api(page, unique_name("choice"))
    record_forms(page)
    page.locator("label[for=set-count-4]").click()
    send(page, "four bananas in a row")
    wait_images_loaded(page, RESULT_IMAGES, 4)
    tiles = page.locator(".msg-assistant .tile")
    first_id = tiles.nth(0).get_attribute("data-image-id")
    third_id = tiles.nth(2).get_attribute("data-image-id")
    chip = page.locator("#editing-chip img")
    expect(chip).to_have_attribute("src", re.compile(rf"/images/{first_id}/"))
    expect(page.locator("#mode-pill .mode-hint")).to_have_text("Edit the last result")

    tiles.nth(2).locator("[data-action=wand]").dispatch_event("click")
    # Image 3 instead of image 1, not beside it.
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "edit")
    expect(page.locator(".attachment")).to_have_count(1)
    expect(chip).to_have_attribute("src", re.compile(rf"/images/{third_id}/"))
    expect(page.locator("#mode-pill .mode-hint")).to_have_text("Edit the image you chose")

    page.locator("label[for=set-count-1]").click()
    send(page, "make it purple")
    wait_images_loaded(page, RESULT_IMAGES, 5)
    sent = last_form(page, "/v1/edit")
    assert sent["source_image_ids"] == [third_id]
    assert "files" not in sent


@pytest.mark.parametrize("locale", ["en-US", ZH])
def test_new_attachments_replace_the_last_result_unless_kept(
    offline_server, open_page, tmp_path, locale
):
    page = open_page(
        offline_server, viewport=PHONE_SE, is_mobile=True, has_touch=True, locale=locale
    )
    sign_up_by_api(page, unique_name("attach"))
    record_forms(page)
    send(page, "a banana to start from")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator("#editing-chip")).to_be_visible()

    page.locator("#file-input").set_input_files(
        [png_file(tmp_path, f"photo-{n}.png", (40 * n, 90, 160)) for n in (1, 2, 3)]
    )
    # Three photos compose three, and the pill says so even where its sentence is hidden.
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "compose")
    expect(page.locator("#mode-pill .mode-count")).to_have_text("3")
    expect(page.locator("#mode-pill .mode-count")).to_be_visible()
    expect(page.locator("#editing-chip")).to_have_count(0)
    keep = page.locator("#keep-result")
    expect(keep).to_be_visible()
    expect(keep).to_have_text(
        "Also use the last result" if locale == "en-US" else "同时使用上一张结果"
    )
    no_horizontal_overflow(page)

    # Kept on purpose: four.
    keep.click()
    expect(page.locator("#mode-pill .mode-count")).to_have_text("4")
    expect(page.locator("#editing-chip")).to_be_visible()
    hint = page.locator("#mode-pill .mode-hint")
    expected = (
        "Combine 4 images: 1 from the thread, 3 attached"
        if locale == "en-US"
        else "合成 4 张图片：对话中 1 张，附加 3 张"
    )
    expect(hint).to_have_text(expected)
    send(page, "all of them together")
    wait_images_loaded(page, RESULT_IMAGES, 2)
    sent = last_form(page, "/v1/compose")
    assert sent["files"] == ["photo-1.png", "photo-2.png", "photo-3.png"]
    assert len(sent["source_image_ids"]) == 1


def test_attachments_without_keeping_send_only_themselves(offline_server, open_page, tmp_path):
    page = open_page(offline_server)
    record_forms(page)
    send(page, "a banana nobody edits")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    page.locator("#file-input").set_input_files([png_file(tmp_path, "mine.png", (10, 200, 90))])
    expect(page.locator("#mode-pill")).to_have_attribute("data-mode", "edit")
    expect(page.locator("#mode-pill .mode-hint")).to_have_text("Edit “mine.png”")
    # Removing it brings the last result back as what goes on.
    page.get_by_role("button", name="Remove mine.png").click()
    expect(page.locator("#editing-chip")).to_be_visible()
    page.locator("#file-input").set_input_files([png_file(tmp_path, "mine.png", (10, 200, 90))])
    send(page, "only my photo")
    wait_images_loaded(page, RESULT_IMAGES, 2)
    sent = last_form(page, "/v1/edit")
    assert sent["files"] == ["mine.png"]
    assert "source_image_ids" not in sent


# ---- 8. errors that fit the wait --------------------------------------------------------------


@pytest.mark.parametrize(
    ("locale", "phrase"),
    [
        ("en-US", r"^Try again (after|on) .+ \(in about \d+ (min|h|days)\)\.$"),
        (ZH, r"^请在 .+ 之后再试（约 \d+ (分钟|小时|天)后）。$"),
    ],
)
def test_a_long_wait_reads_as_a_time_without_a_retry_button(
    gemini_server, fake, open_page, console, locale, phrase
):
    page = open_page(
        gemini_server, viewport=PHONE_SE, is_mobile=True, has_touch=True, locale=locale
    )
    fake.enqueue(quota_per_day())
    job = submit(page, "a banana past the daily quota")
    card = page.locator(".error-card")
    expect(card).to_have_class(re.compile(r"\bis-long-wait\b"))
    failed = page.request.get(f"/v1/jobs/{job['id']}").json()
    assert failed["error"]["error"] == "upstream_quota_exhausted"
    assert failed["error"]["retry_after"] > 60, failed["error"]
    expect(card.locator(".error-note")).to_have_text(re.compile(phrase))
    expect(card.locator(".retry-btn")).to_have_count(0)
    expect(page.get_by_text(re.compile(r"\d{3,} s"))).to_have_count(0)
    # On a phone the message has the card's width and the code reads whole.
    code = card.locator(".error-code")
    expect(code).to_have_text("upstream_quota_exhausted")
    lines = code.evaluate(
        "el => { const r = document.createRange(); r.selectNodeContents(el);"
        " return new Set([...r.getClientRects()].map(b => Math.round(b.top))).size; }"
    )
    assert lines == 1
    assert card.locator(".error-main").bounding_box()["width"] > 250
    no_horizontal_overflow(page)


def test_a_short_wait_still_counts_down_to_retry(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    fake.enqueue(rate_limited(retry_delay="3s"))
    submit(page, "a banana that waits a moment")
    retry = page.locator(".error-card .retry-btn")
    expect(retry).to_have_text(re.compile(r"Retry in [123] s"))
    expect(page.locator(".error-card .error-note")).to_have_count(0)


@pytest.mark.parametrize(("locale", "label"), [("en-US", "Edit the prompt"), (ZH, "修改提示词")])
def test_a_blocked_prompt_offers_to_edit_it(gemini_server, fake, open_page, locale, label):
    page = open_page(gemini_server, locale=locale)
    fake.enqueue(blocked_prompt())
    submit(page, "a banana the filters dislike")
    card = page.locator(".error-card.is-blocked")
    expect(card.locator(".error-code")).to_have_text("content_blocked")
    expect(card.locator(".retry-btn")).to_have_count(0)
    page.locator("#prompt").fill("something else entirely")
    card.get_by_role("button", name=label).click()
    expect(page.locator("#prompt")).to_have_value("a banana the filters dislike")
    expect(page.locator("#prompt")).to_be_focused()
    assert fake.calls == 1


def test_the_progress_line_says_the_server_is_waiting(one_worker_server, fake, open_page):
    page = open_page(one_worker_server)
    fake.script([rate_limited(retry_delay="4s"), ok()])
    submit(page, "a banana behind a rate limit")
    pending = page.locator(PENDING)
    expect(pending).to_have_attribute("data-state", "retrying")
    wait = pending.locator(".job-wait")
    # The job says what it waits out (retry.reason): the model's rate limit.
    phrase = "Rate limited by the model: trying again in {} s"
    expect(wait).to_have_text(re.compile("^" + re.escape(phrase).replace(r"\{\}", "[1-4]") + "$"))
    seconds = int(re.search(r"\d", wait.inner_text()).group())
    # It counts down, then the result comes.
    expect(wait).not_to_have_text(phrase.format(seconds), timeout=2500)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    assert fake.calls == 2


# ---- 9. a failed turn keeps its prompt and is stored once ---------------------------------


@pytest.mark.parametrize("locale", ["en-US", ZH])
def test_a_failed_turn_keeps_its_prompt_and_a_retry_is_the_same_turn(
    gemini_server, fake, open_page, locale
):
    page = open_page(gemini_server, locale=locale)
    session = sign_up_by_api(page, unique_name("again"))
    goto_ready(page)
    fake.enqueue(server_error(503))
    job = submit(page, "a banana on a bad day")
    card = page.locator(".msg-assistant.failed .error-card")
    expect(card).to_be_visible()
    # The text is back in the box, ready to be reworded or sent again.
    expect(page.locator("#prompt")).to_have_value("a banana on a bad day")

    with page.expect_response("**/v1/generate") as again:
        card.locator(".retry-btn").click()
    assert again.value.status == 202
    # The retry names the failure the server stored, which it replaces.
    assert again.value.request.post_data_json["retry_of"] == job_error_message_id(page, job)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    # In place: one prompt, one answer, and the text put back is spent.
    expect(page.locator(".msg-user")).to_have_count(1)
    expect(page.locator(".msg-assistant")).to_have_count(1)
    expect(page.locator(".error-card")).to_have_count(0)
    expect(page.locator("#prompt")).to_have_value("")

    # The server keeps one turn too: the retry replaced the stored failure.
    conv_id = job["conversation_id"]
    stored = page.request.get(
        f"/conversations/{conv_id}/messages", headers={"X-CSRF-Token": session["csrf_token"]}
    ).json()["items"]
    assert [m["role"] for m in stored] == ["user", "assistant"]
    assert stored[1]["error"] is None
    goto_ready(page)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-user")).to_have_count(1)
    expect(page.locator(".msg-user .msg-text")).to_have_text("a banana on a bad day")
    expect(page.locator(".error-card")).to_have_count(0)


def job_error_message_id(page, job) -> int:
    """The stored failure a failed job's error names."""
    failed = page.request.get(job["links"]["self"]).json()
    assert failed["status"] == "failed"
    return failed["error"]["message_id"]


def test_a_different_prompt_after_a_failure_keeps_the_failure(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    sign_up_by_api(page, unique_name("moved"))
    goto_ready(page)
    fake.enqueue(server_error(500))
    submit(page, "a banana that fails")
    expect(page.locator(".error-card")).to_be_visible()
    page.locator("#prompt").fill("a different banana")
    page.locator("#prompt").press("Enter")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    goto_ready(page)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    # Not a retry: both turns stay, the failure with its card.
    expect(page.locator(".msg-user")).to_have_count(2)
    expect(page.locator(".error-card")).to_have_count(1)


# ---- 11. say which engine answered ----------------------------------------------------------


@pytest.mark.parametrize(("locale", "engine"), [("en-US", "Offline engine"), (ZH, "离线引擎")])
def test_offline_results_and_the_picker_name_the_offline_engine(
    offline_server, open_page, locale, engine
):
    page = open_page(offline_server, locale=locale)
    record_forms(page)
    send(page, "a banana drawn locally")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    meta = page.locator(".msg-assistant .msg-meta")
    expect(meta.locator(".engine-offline")).to_have_text(engine)
    expect(meta).not_to_contain_text("gemini")
    expect(meta).not_to_contain_text("tokens")
    options = page.locator("#set-model option")
    assert options.count() >= 1
    for text in options.all_inner_texts():
        assert text.startswith(engine), text
    # So does the hint under the picker (the model's limits).
    expect(page.locator("#set-model-hint")).to_contain_text(engine)
    # The request still names the model.
    send(page, "make it red")
    wait_images_loaded(page, RESULT_IMAGES, 2)
    assert last_form(page, "/v1/edit")["model"][0].startswith("gemini")


def test_gemini_results_name_the_model(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    submit(page, "a banana from the model")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    meta = page.locator(".msg-assistant .msg-meta")
    expect(meta).to_contain_text("gemini")
    expect(meta.locator(".engine-offline")).to_have_count(0)
    for text in page.locator("#set-model option").all_inner_texts():
        assert "Offline" not in text
    expect(page.locator("#set-model-hint")).not_to_contain_text("Offline")


# ---- 12. the login dialog ----------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en-US", ZH])
def test_a_wrong_password_keeps_the_name_and_login_opens_the_last_conversation(
    offline_server, open_page, console, locale
):
    console.allow(r"status of 401")  # the wrong password, on purpose
    username = unique_name("back")
    first = open_page(offline_server)
    sign_up_by_api(first, username)
    goto_ready(first)
    send(first, "a banana from another device")
    wait_images_loaded(first, RESULT_IMAGES, 1)
    expect(first.locator(".conv-item")).to_have_count(1)

    page = open_page(offline_server, locale=locale)
    page.locator("#login-btn").click()
    page.locator("#auth-username").fill(username)
    page.locator("#auth-password").fill("not-the-password")
    page.locator("#auth-submit").click()
    expect(page.locator("#auth-error")).to_be_visible()
    expect(page.locator("#auth-username")).to_have_value(username)
    expect(page.locator("#auth-password")).to_have_value("")
    expect(page.locator("#auth-password")).to_be_focused()

    page.keyboard.type(PASSWORD)
    page.keyboard.press("Enter")
    expect(page.locator("#account-name")).to_have_text(username)
    # This browser never opened it: the newest conversation opens.
    expect(page.locator("#thread-title")).to_have_text("a banana from another device")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".conv-item.is-current")).to_have_count(1)


@pytest.mark.parametrize(
    ("locale", "create", "back"),
    [("en-US", "Create an account", "I already have an account"), (ZH, "创建账号", "我已有账号")],
)
def test_create_an_account_is_as_plain_as_log_in(offline_server, open_page, locale, create, back):
    page = open_page(
        offline_server, viewport=PHONE_SE, is_mobile=True, has_touch=True, locale=locale
    )
    page.locator("#login-btn").click()
    submit_box = page.locator("#auth-submit").bounding_box()
    switch = page.locator("#auth-switch")
    expect(switch).to_be_visible()
    expect(switch).to_have_text(create)
    switch_box = switch.bounding_box()
    # As wide and as tall as the way in, and inside the screen.
    assert abs(switch_box["width"] - submit_box["width"]) < 1
    assert switch_box["height"] >= submit_box["height"] - 1
    assert switch_box["y"] + switch_box["height"] <= PHONE_SE["height"]
    switch.click()
    expect(page.locator("#tab-signup")).to_have_attribute("aria-selected", "true")
    expect(page.locator("#auth-username")).to_be_focused()
    expect(switch).to_have_text(back)
    switch.click()
    expect(page.locator("#tab-login")).to_have_attribute("aria-selected", "true")
