"""The chat page on background jobs (issue 13, point 6): every prompt is a
job, its placeholder follows it (queued, running, retrying), a reload or
another device picks it up again, cancel works queued and running, several
run at once, and a result that lands in a hidden tab marks the title."""

from __future__ import annotations

import json
import re
import time

import pytest
from playwright.sync_api import expect

from tests.e2e.helpers import (
    goto_ready,
    no_horizontal_overflow,
    sign_up_by_api,
    unique_name,
    wait_images_loaded,
)
from tests.e2e.jobs_support import (
    PENDING,
    RECORDING_NOTIFICATION,
    RESULT_IMAGES,
    set_hidden,
    slow,
    submit,
    wait_for_upstream_calls,
)
from tests.fake_gemini import Fault, rate_limited, server_error

pytestmark = pytest.mark.browser

PHONE_SE = {"width": 375, "height": 667}


def generate_posts(page) -> list[str]:
    posts: list[str] = []
    page.on(
        "request",
        lambda request: (
            posts.append(request.url)
            if request.method == "POST" and re.search(r"/v1/(generate|edit|compose)$", request.url)
            else None
        ),
    )
    return posts


# ---- must show: a reload in the middle of a generation --------------------------------------


def test_reload_mid_generation_shows_the_result_without_sending_again(
    gemini_server, fake, open_page, browser
):
    page = open_page(gemini_server)
    username = unique_name("reload")
    sign_up_by_api(page, username)
    goto_ready(page)
    fake.enqueue(slow(5))

    job = submit(page, "a banana that takes its time")
    assert job["status"] in ("queued", "running")
    assert job["links"]["events"] == f"/v1/jobs/{job['id']}/events"
    expect(page.locator(PENDING)).to_have_attribute("data-state", "running")
    page.wait_for_timeout(1000)

    posts = generate_posts(page)
    goto_ready(page)
    # The conversation comes back with the job still running in it…
    expect(page.locator(".msg-user .msg-text")).to_have_text(["a banana that takes its time"])
    pending = page.locator(PENDING)
    expect(pending).to_have_attribute("data-state", "running")
    expect(pending.locator(".job-status")).to_have_text("Generating")
    # …its clock counts from when the worker took it, not from the reload.
    seconds = int(pending.locator(".elapsed").inner_text().split(":")[1])
    assert seconds >= 1

    # Another device, same account: the same job, followed there too.
    other = browser.new_context(base_url=gemini_server.url())
    other_page = other.new_page()
    other_page.request.post(
        "/auth/login", data={"username": username, "password": "correct-horse-1"}
    )
    goto_ready(other_page)
    other_page.locator(".conv-open").first.click()
    expect(other_page.locator(PENDING)).to_have_count(1)

    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(PENDING)).to_have_count(0)
    expect(page.locator(".msg-user")).to_have_count(1)
    expect(page.locator(".msg-assistant")).to_have_count(1)
    wait_images_loaded(other_page, RESULT_IMAGES, 1)
    expect(other_page.locator(".msg-assistant")).to_have_count(1)
    other.close()

    assert posts == []  # nothing was sent again
    assert fake.calls == 1
    # The result is stored: the next reload draws it from the conversation.
    goto_ready(page)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-assistant")).to_have_count(1)
    expect(page.locator(PENDING)).to_have_count(0)


def test_anonymous_job_survives_a_reload(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    fake.enqueue(slow(3))
    job = submit(page, "an anonymous banana")
    assert job["conversation_id"] is None
    expect(page.locator(PENDING)).to_be_visible()
    page.wait_for_timeout(1000)

    posts = generate_posts(page)
    goto_ready(page)
    expect(page.locator(".msg-user .msg-text")).to_have_text(["an anonymous banana"])
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-user .not-saved")).to_be_visible()
    assert posts == []
    assert fake.calls == 1
    # Shown once, then forgotten like any result without an account.
    assert page.evaluate("sessionStorage.getItem('nb.jobs')") is None
    goto_ready(page)
    expect(page.locator(".msg")).to_have_count(0)


def test_a_job_ending_while_the_thread_loads_is_drawn_once(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    sign_up_by_api(page, unique_name("race"))
    goto_ready(page)
    fake.enqueue(slow(2))
    submit(page, "a banana at the finish line")
    expect(page.locator(PENDING)).to_have_attribute("data-state", "running")

    # The page lists the running job, then reads the messages only after the
    # job has ended: both have it, and it must show once.
    def late_messages(route):
        wait_for_upstream_calls(fake, 1)
        time.sleep(1.0)
        route.continue_()

    page.route("**/conversations/*/messages*", late_messages)
    with page.expect_response("**/v1/jobs?status=active*") as listed:
        goto_ready(page)
    assert [job["status"] for job in listed.value.json()["jobs"]] == ["running"]
    wait_images_loaded(page, RESULT_IMAGES, 1)
    page.wait_for_timeout(1500)  # any late second copy would be drawn by now
    expect(page.locator(".msg-user")).to_have_count(1)
    expect(page.locator(".msg-assistant")).to_have_count(1)
    expect(page.locator(PENDING)).to_have_count(0)


def test_a_job_failing_after_a_reload_shows_its_failure_once(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    sign_up_by_api(page, unique_name("fallen"))
    goto_ready(page)
    broken = server_error(500)
    fake.enqueue(Fault("slow_error", status=broken.status, body=broken.body, delay_s=2))
    job = submit(page, "a banana that breaks later")
    expect(page.locator(PENDING)).to_have_attribute("data-state", "running")
    goto_ready(page)
    expect(page.locator(PENDING)).to_have_count(1)

    card = page.locator(".msg-assistant .error-card")
    expect(card).to_have_count(1)
    failed = page.request.get(f"/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    expect(card.locator(".error-code")).to_have_text(failed["error"]["error"])
    expect(page.locator(PENDING)).to_have_count(0)
    expect(page.locator(".msg-user")).to_have_count(1)
    page.wait_for_timeout(1000)
    expect(page.locator(".msg-assistant")).to_have_count(1)


# ---- queue, cancel, several at once --------------------------------------------------------


def test_queued_position_and_cancelling_a_queued_job(one_worker_server, fake, open_page):
    page = open_page(one_worker_server)
    sign_up_by_api(page, unique_name("queue"))
    goto_ready(page)
    fake.enqueue(slow(4))

    first = submit(page, "the first banana")
    expect(page.locator(PENDING).first).to_have_attribute("data-state", "running")
    second = submit(page, "the second banana")
    assert second["status"] == "queued" and second["position"] == 1, second
    waiting = page.locator(PENDING).nth(1)
    expect(waiting).to_have_attribute("data-state", "queued")
    expect(waiting.locator(".job-status")).to_have_text("Queued · #1 in line")
    expect(waiting.locator(".elapsed")).to_be_hidden()

    with page.expect_response(f"**/v1/jobs/{second['id']}") as deleted:
        waiting.get_by_role("button", name="Cancel").click()
    assert deleted.value.request.method == "DELETE"
    assert deleted.value.status == 200 and deleted.value.json()["status"] == "canceled"
    # At once, while the first still runs.
    expect(page.locator(".error-card.is-cancelled .error-message")).to_have_text("Cancelled.")
    expect(page.locator(PENDING)).to_have_count(1)

    wait_images_loaded(page, RESULT_IMAGES, 1)
    page.wait_for_timeout(1000)
    assert fake.calls == 1  # the cancelled one never reached the upstream
    finished = page.request.get(f"/v1/jobs/{first['id']}").json()
    assert finished["status"] == "succeeded"


def test_cancelling_a_job_waiting_to_retry(one_worker_server, fake, open_page):
    page = open_page(one_worker_server)
    sign_up_by_api(page, unique_name("stop"))
    goto_ready(page)
    fake.script([rate_limited(retry_delay="3s")])
    job = submit(page, "a banana nobody waits for")
    pending = page.locator(PENDING)
    expect(pending).to_have_attribute("data-state", "retrying")
    expect(pending.locator(".job-status")).to_have_text("Retrying (attempt 2)…")

    with page.expect_response(f"**/v1/jobs/{job['id']}") as deleted:
        pending.get_by_role("button", name="Cancel").click()
    assert deleted.value.request.method == "DELETE"
    assert deleted.value.status == 202
    assert deleted.value.json()["cancel_requested"] is True
    expect(pending).to_have_attribute("data-state", "cancelling")
    expect(pending.locator(".job-status")).to_have_text("Cancelling…")
    expect(pending.get_by_role("button", name="Cancel")).to_be_disabled()

    # It stops before the next upstream call.
    expect(page.locator(".error-card.is-cancelled .error-message")).to_have_text(
        "Cancelled.", timeout=10_000
    )
    expect(page.locator(PENDING)).to_have_count(0)
    expect(page.locator(RESULT_IMAGES)).to_have_count(0)
    assert page.request.get(f"/v1/jobs/{job['id']}").json()["status"] == "canceled"
    assert fake.calls == 1

    # Retry sends it again as a new job.
    with page.expect_response("**/v1/generate") as again:
        page.locator(".error-card .retry-btn").click()
    assert again.value.status == 202 and again.value.json()["id"] != job["id"]
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-user")).to_have_count(1)


def test_cancelling_during_the_upstream_call_keeps_what_it_made(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    sign_up_by_api(page, unique_name("late"))
    goto_ready(page)
    fake.enqueue(slow(3))
    job = submit(page, "a banana already on its way")
    pending = page.locator(PENDING)
    expect(pending).to_have_attribute("data-state", "running")
    with page.expect_response(f"**/v1/jobs/{job['id']}") as deleted:
        pending.get_by_role("button", name="Cancel").click()
    assert deleted.value.status == 202
    expect(pending.locator(".job-status")).to_have_text("Cancelling…")

    # The call in flight answers: the job ends cancelled, but the image it
    # made is paid for and stored, so it is shown (and stays after a reload).
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".error-card")).to_have_count(0)
    finished = page.request.get(f"/v1/jobs/{job['id']}").json()
    assert finished["status"] == "canceled" and len(finished["result"]["images"]) == 1
    assert fake.calls == 1
    goto_ready(page)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".msg-assistant")).to_have_count(1)


def test_two_jobs_at_once_in_one_conversation(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    sign_up_by_api(page, unique_name("pair"))
    goto_ready(page)
    fake.script([slow(2), slow(2)])

    first = submit(page, "a red banana")
    # The composer is free again as soon as the job is accepted.
    second = submit(page, "a blue banana")
    assert first["id"] != second["id"]
    assert second["conversation_id"] == first["conversation_id"] is not None
    expect(page.locator(PENDING)).to_have_count(2)
    expect(page.locator(f"{PENDING}[data-state=running]")).to_have_count(2)

    wait_images_loaded(page, RESULT_IMAGES, 2)
    expect(page.locator(PENDING)).to_have_count(0)
    # Each answer in its own place, under its own prompt.
    kinds = page.locator("#messages > .msg").evaluate_all(
        "nodes => nodes.map(n => n.classList.contains('msg-user') ? 'user:' +"
        " n.querySelector('.msg-text').textContent : 'answer:' + n.querySelector('.tile img').alt)"
    )
    assert len(kinds) == 4, kinds
    assert kinds[0] == "user:a red banana" and "a red banana" in kinds[1], kinds
    assert kinds[2] == "user:a blue banana" and "a blue banana" in kinds[3], kinds
    assert fake.max_in_flight == 2  # they ran side by side


def test_a_failed_job_shows_the_failure_card_and_retries(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    sign_up_by_api(page, unique_name("fail"))
    goto_ready(page)
    fake.enqueue(server_error(500))
    job = submit(page, "a banana that breaks")

    card = page.locator(".msg-assistant.failed .error-card")
    expect(card).to_be_visible()
    failed = page.request.get(f"/v1/jobs/{job['id']}").json()
    assert failed["status"] == "failed"
    expect(card.locator(".error-message")).to_have_text(failed["error"]["message"])
    expect(card.locator(".error-code")).to_have_text(failed["error"]["error"])

    with page.expect_response("**/v1/generate") as again:
        card.locator(".retry-btn").click()
    assert again.value.status == 202
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page.locator(".error-card")).to_have_count(0)
    expect(page.locator(".msg-user")).to_have_count(1)  # the retry reuses the turn
    assert fake.calls == 2


# ---- away from the tab; no stream ------------------------------------------------------------


def test_a_result_in_a_hidden_tab_marks_the_title_and_notifies(gemini_server, fake, open_page):
    page = open_page(gemini_server)
    page.context.add_init_script(RECORDING_NOTIFICATION)
    goto_ready(page)
    fake.enqueue(slow(2))
    submit(page, "a banana for later")
    pending = page.locator(PENDING)
    # Never asked on load; asked once the user says so.
    assert page.evaluate("window.__permissionRequests") == 0
    pending.get_by_role("button", name="Notify me when done").click()
    expect(pending.locator(".job-notify")).to_have_count(0)
    assert page.evaluate("window.__permissionRequests") == 1

    set_hidden(page, True)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    expect(page).to_have_title(re.compile(r"^\(1\) ✓ "))
    notes = page.evaluate("window.__notifications")
    assert notes == [{"title": "Done: 1 image.", "body": "a banana for later"}], notes

    set_hidden(page, False)
    expect(page).to_have_title("Nano Banana")
    # In the foreground, a result marks nothing.
    submit(page, "a banana in plain sight")
    wait_images_loaded(page, RESULT_IMAGES, 2)
    expect(page).to_have_title("Nano Banana")
    assert len(page.evaluate("window.__notifications")) == 1


def test_a_refused_stream_falls_back_to_polling(gemini_server, fake, open_page, console):
    console.allow(r"\b503\b")  # the refused stream, on purpose
    page = open_page(gemini_server)
    refused = []

    def streams_full(route):
        refused.append(route.request.url)
        route.fulfill(
            status=503,
            headers={"Retry-After": "5", "Content-Type": "application/json"},
            body=json.dumps({"error": "streams_full", "message": "Too many streams."}),
        )

    page.route("**/v1/jobs/*/events", streams_full)
    polls = []
    page.on(
        "request",
        lambda request: (
            polls.append(request.url)
            if request.method == "GET" and re.search(r"/v1/jobs/[\w-]+$", request.url)
            else None
        ),
    )
    fake.enqueue(slow(3))
    job = submit(page, "a banana by polling")
    expect(page.locator(PENDING)).to_have_attribute("data-state", "running")
    wait_images_loaded(page, RESULT_IMAGES, 1)
    assert refused, "the page never opened the stream"
    assert polls and all(url.endswith(f"/v1/jobs/{job['id']}") for url in polls), polls
    # Every ~2 s, not in a tight loop.
    assert 1 <= len(polls) <= 4, polls


# ---- a phone ------------------------------------------------------------------------------


@pytest.mark.parametrize("locale", ["en-US", "zh-CN"])
def test_the_placeholder_fits_a_phone(one_worker_server, fake, open_page, locale):
    page = open_page(
        one_worker_server, viewport=PHONE_SE, is_mobile=True, has_touch=True, locale=locale
    )
    sign_up_by_api(page, unique_name("phone"))
    goto_ready(page)
    fake.script([slow(3)])
    submit(page, "a banana on a small screen")
    submit(page, "another banana on a small screen")
    for index, state in enumerate(["running", "queued"]):
        placeholder = page.locator(PENDING).nth(index)
        expect(placeholder).to_have_attribute("data-state", state)
        for part in (".job-status", ".job-cancel"):
            box = placeholder.locator(part).bounding_box()
            assert box and box["x"] >= 0 and box["x"] + box["width"] <= PHONE_SE["width"], (
                part,
                box,
            )
    no_horizontal_overflow(page)
    page.locator(PENDING).nth(1).locator(".job-cancel").click()
    expect(page.locator(".error-card.is-cancelled")).to_have_count(1)
    wait_images_loaded(page, RESULT_IMAGES, 1)
    no_horizontal_overflow(page)
