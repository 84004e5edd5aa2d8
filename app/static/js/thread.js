// The conversation in the middle: stored history (older pages on scroll up),
// the user's turn shown at once, a placeholder while its background job waits
// and runs (several at once; jobs still running are picked up again when the
// thread is read), the result or an error that fits the wait (a countdown, a
// clock time, or "edit the prompt"), and what a cancel really did.

import { api, ApiError } from "./api.js";
import { $, h } from "./dom.js";
import { icon } from "./icons.js";
import { clockTime, locale, t } from "./i18n.js";
import { imageGrid, localImage, storedImage } from "./images.js";
import {
  activeJobs, announceFinished, anonymousJobs, cancelJob, enableNotifications, fetchJob, followJob,
  forgetAnonymousJob, isJob, jobImage, noteActivity, notificationsAvailable, notifying, refreshActivity,
  rememberAnonymousJob, submitJob,
} from "./jobs.js";
import { emit, state } from "./state.js";
import { toast } from "./ui.js";
import { LONG_WAIT_S, QUOTA_CODES, quotaMessage, resetPhrase, waitSeconds } from "./quota.js";

const PAGE = 30;
const messagesEl = () => $("#messages");
const threadEl = () => $("#thread");

let olderCursor = null;
let loadingOlder = false;
let observer = null;
// Whether the view follows the newest message: true until the user scrolls up.
let stickToBottom = true;
// The jobs drawn in the shown thread (follower → anonymous job id or null);
// closed when the thread is replaced, so no stream outlives what it draws into.
const followers = new Map();
// The views (see state.view) with a request on its way: only the thread that
// sent one waits for it; another conversation may send meanwhile.
const sendingIn = new Set();

/** Whether the shown thread is still sending its last prompt. */
export function sending() {
  return sendingIn.has(state.view);
}

// ---- rendering ------------------------------------------------------------------

function avatar() {
  return h("div", { class: "msg-avatar", "aria-hidden": "true" },
    h("img", { src: $(".brand-logo").getAttribute("src"), alt: "", width: 28, height: 28 }));
}

/** The user's turn: prompt, input thumbnails, the mode. */
export function userMessage({ prompt, kind, inputs = [], when, saved = true }) {
  const thumbs = inputs.length
    ? h("div", { class: "msg-inputs" },
      inputs.map((image, index) => h("img", {
        src: image.thumb || image.url,
        alt: t("image.inputAlt", { n: index + 1 }),
        loading: "lazy",
        width: 64,
        height: 64,
        class: image.editing ? "is-editing" : "",
      })))
    : null;
  return h("article", { class: "msg msg-user", dataset: saved ? { kind } : { kind, unsaved: "true" } },
    h("div", { class: "msg-body" },
      h("div", { class: "bubble" }, thumbs, h("p", { class: "msg-text", text: prompt || "" })),
      h("div", { class: "msg-meta" },
        h("span", { class: `kind-tag kind-${kind}`, i18n: `mode.${kind}` }),
        when ? h("time", { datetime: when, text: clockTime(when) }) : null,
        saved ? null : h("span", { class: "not-saved", i18n: "turn.notSaved" }))));
}

function metaLine(message) {
  const parts = [];
  // The offline engine answers under the model's name; it says what it is,
  // and its token count is a stand-in, not something spent.
  const offline = state.provider === "offline";
  if (offline) {
    parts.push(h("span", { class: "engine-offline", i18n: "provider.offline", title: message.model || "" }));
  } else if (message.model) {
    parts.push(message.model);
  }
  if (message.duration_ms) parts.push(t("turn.duration", { s: Math.max(0.1, message.duration_ms / 1000).toFixed(1) }));
  const tokens = message.usage?.total_tokens;
  if (tokens && !offline) parts.push(t("turn.tokens", { n: tokens }));
  if (message.params?.seed !== undefined && message.params?.seed !== null) {
    parts.push(t("turn.seed", { n: message.params.seed }));
  }
  return h("div", { class: "msg-meta" },
    parts.map((part) => (typeof part === "string" ? h("span", { text: part }) : part)),
    message.created_at ? h("time", { datetime: message.created_at, text: clockTime(message.created_at) }) : null);
}

function textBlock(texts) {
  // N candidates often say the same thing N times; once is enough.
  const clean = [...new Set((texts || []).filter((text) => text && text.trim()))];
  if (!clean.length) return null;
  // Model output is text, never markup.
  return h("div", { class: "msg-texts" }, clean.map((text) => h("p", { text })));
}

/** An assistant answer: texts, the image grid, warnings, meta (and a note: a cancel that came late). */
export function assistantMessage(message, images, prompt, note = null) {
  const context = { prompt, when: message.created_at || new Date().toISOString() };
  const body = h("div", { class: "msg-body" },
    note ? h("p", { class: "turn-note", role: "note", text: note }) : null,
    textBlock(message.texts),
    images.length ? imageGrid(images, context) : null,
    !images.length && !message.error && !(message.texts || []).length
      ? h("p", { class: "muted", i18n: "turn.noImage" }) : null,
    (message.warnings || []).length
      ? h("ul", { class: "warnings" }, message.warnings.map((w) => h("li", { text: String(w) }))) : null,
    message.error ? errorCard({ message: message.error.message || message.error.code, code: message.error.code }) : null,
    metaLine(message));
  return h("article", { class: "msg msg-assistant", dataset: { id: message.id ?? "" } }, avatar(), body);
}

function errorCard({ message, code, upstream, note = null, noteKey = null }, actions = null) {
  return h("div", { class: "error-card", role: "alert" },
    icon("alert"),
    h("div", { class: "error-main" },
      h("p", { class: "error-message", text: message }),
      noteKey ? h("p", { class: "error-note", i18n: noteKey })
        : note ? h("p", { class: "error-note", text: note }) : null,
      upstream ? h("p", { class: "error-upstream", text: upstream }) : null,
      code ? h("p", { class: "error-code", text: code }) : null),
    actions);
}

const inputIds = (message) => (message.input_images || []).map((image) => image.id).join(",");

/**
 * A failed turn sent again is one turn. The page's Retry names the stored
 * failure (retry_of) and the server replaces it; history written before that
 * (or by a client retrying without it) may hold a failure followed at once
 * by the same prompt with the same images: it is left out, so a reload shows
 * the turn once.
 */
function withoutRetried(items) {
  const kept = [];
  for (let i = 0; i < items.length; i += 1) {
    const [user, reply, next] = [items[i], items[i + 1], items[i + 2]];
    const retried = user.role === "user" && reply?.role === "assistant" && reply.error
      && next?.role === "user" && next.kind === user.kind && next.prompt === user.prompt
      && inputIds(next) === inputIds(user);
    if (retried) i += 1;
    else kept.push(user);
  }
  return kept;
}

function renderStored(items) {
  // Pairs each answer with the prompt before it, for alt text and file names.
  const nodes = [];
  let lastPrompt = "";
  for (const message of withoutRetried(items)) {
    if (message.role === "user") {
      lastPrompt = message.prompt || "";
      const node = userMessage({
        prompt: message.prompt,
        kind: message.kind,
        inputs: (message.input_images || []).map(storedImage),
        when: message.created_at,
      });
      node.dataset.id = String(message.id);
      nodes.push(node);
    } else {
      nodes.push(assistantMessage(message, (message.images || []).map(storedImage),
        message.prompt || lastPrompt));
    }
  }
  return nodes;
}

function newestImage(items) {
  for (let i = items.length - 1; i >= 0; i -= 1) {
    const images = items[i].role === "assistant" ? items[i].images || [] : [];
    if (images.length) return storedImage(images[0]);
  }
  return null;
}

// ---- the thread's life -------------------------------------------------------------------

function updateEmpty() {
  const empty = !messagesEl().children.length;
  $("#empty-state").hidden = !empty;
  threadEl().classList.toggle("is-empty", empty);
}

function scrollToBottom() {
  const thread = threadEl();
  thread.scrollTop = thread.scrollHeight;
  stickToBottom = true;
}

export function clearThread() {
  state.view += 1;
  for (const [follower, anonymousId] of followers) {
    follower.close();
    // Without an account the tab keeps its unfinished jobs and draws them
    // again (resumeAnonymousJobs); once logged in, the page changing
    // conversation is what the login dialog said would let them go.
    if (anonymousId && state.user) forgetAnonymousJob(anonymousId);
  }
  followers.clear();
  olderCursor = null;
  messagesEl().replaceChildren();
  $("#thread-loading").hidden = true;
  updateEmpty();
  emit("busy", sending());
}

/** Show a stored conversation; resolves with its newest image (or null). */
export async function showConversation(convId) {
  clearThread();
  const view = state.view;
  $("#thread-loading").hidden = false;
  $("#empty-state").hidden = true;
  try {
    // The unfinished jobs before the messages: a job that ends before the
    // list is read is among the messages, one that ends after it is drawn
    // from the job, once even if the messages have it too (see showResult).
    const jobs = await activeJobs(convId).catch((error) => {
      if (!(error instanceof ApiError)) throw error;
      return [];
    });
    if (view !== state.view) return null;
    const page = await api.get(`/conversations/${convId}/messages?limit=${PAGE}`);
    if (view !== state.view) return null;
    messagesEl().replaceChildren(...renderStored(page.items));
    olderCursor = page.next_cursor;
    for (const job of jobs) resumeJob(job);
    updateEmpty();
    scrollToBottom();
    requestAnimationFrame(fillUpwards);
    return newestImage(page.items);
  } finally {
    if (view === state.view) $("#thread-loading").hidden = true;
  }
}

/** The observer only reports changes: if the top is still in view, go on. */
function fillUpwards() {
  if (olderCursor && threadEl().scrollTop < 200) loadOlder();
}

async function loadOlder() {
  if (!olderCursor || loadingOlder || !state.currentConvId) return;
  loadingOlder = true;
  const view = state.view;
  const convId = state.currentConvId;
  $("#thread-loading").hidden = false;
  try {
    const page = await api.get(
      `/conversations/${convId}/messages?limit=${PAGE}&before=${encodeURIComponent(olderCursor)}`);
    if (view !== state.view) return;
    const thread = threadEl();
    const before = thread.scrollHeight - thread.scrollTop;
    messagesEl().prepend(...renderStored(page.items));
    olderCursor = page.next_cursor;
    // Keep what the user was looking at where it was.
    thread.scrollTop = thread.scrollHeight - before;
    requestAnimationFrame(fillUpwards);
  } catch (error) {
    if (error instanceof ApiError) olderCursor = null;
  } finally {
    loadingOlder = false;
    if (view === state.view) $("#thread-loading").hidden = true;
  }
}

export function initThread() {
  observer = new IntersectionObserver((entries) => {
    if (entries.some((entry) => entry.isIntersecting)) loadOlder();
  }, { root: threadEl(), rootMargin: "200px 0px 0px 0px" });
  observer.observe($("#thread-sentinel"));
  const thread = threadEl();
  thread.addEventListener("scroll", () => {
    stickToBottom = thread.scrollHeight - thread.scrollTop - thread.clientHeight < 48;
  }, { passive: true });
  // The composer grows (attachments, long prompts) and images arrive: keep
  // the newest message in view unless the user is reading further up.
  const keep = new ResizeObserver(() => {
    if (stickToBottom && messagesEl().children.length) thread.scrollTop = thread.scrollHeight;
  });
  keep.observe(thread);
  keep.observe(messagesEl());
  updateEmpty();
}

// ---- a turn in flight -------------------------------------------------------------------

function clock(seconds) {
  const whole = Math.max(0, Math.floor(seconds));
  return `${Math.floor(whole / 60)}:${String(whole % 60).padStart(2, "0")}`;
}

/** What the placeholder says for a job's state (null: still sending it). */
function jobPhrase(job, cancelling) {
  if (job?.cancel_requested || cancelling) return ["cancelling", t("job.cancelling")];
  if (!job) return ["sending", t("turn.working")];
  if (job.status === "queued") {
    return ["queued", job.position ? t("job.queuedAt", { n: job.position }) : t("job.queued")];
  }
  if (job.retry) return ["retrying", t("job.retrying", { n: job.retry.attempt ?? job.attempts })];
  return ["running", t("job.running")];
}

// Why the server waits before trying the upstream again, when it says (retry.reason).
const WAIT_REASONS = { upstream_rate_limited: "job.waitRateLimited", upstream_overloaded: "job.waitOverloaded" };

/** While the server waits out a refusal: how long still, and why when it says. */
function waitPhrase(retry, remaining) {
  return t(WAIT_REASONS[retry.reason] || "job.wait", { s: Math.ceil(remaining) });
}

/**
 * The answer being made: its state ("Queued · #3 in line", "Generating" and
 * the time since the worker took it; while the server waits to try again,
 * how long), skeleton tiles, Cancel, and the offer to notify when done.
 * show(job) moves it on; cancelling(true) while the cancel is on its way;
 * stop() ends the clock.
 */
function placeholder(count, aspect) {
  const status = h("span", { class: "job-status" });
  const elapsed = h("span", { class: "elapsed", "aria-hidden": "true" });
  const skeletons = h("div", { class: "image-grid skeletons", dataset: { count: String(count) } });
  const [w, hgt] = (aspect || "1:1").split(":").map(Number);
  for (let i = 0; i < count; i += 1) {
    const box = h("div", { class: "skeleton" });
    if (w && hgt) box.style.aspectRatio = `${w} / ${hgt}`;
    skeletons.append(box);
  }
  const wait = h("span", { class: "job-wait", hidden: true });
  let onCancel = () => {};
  const cancel = h("button", { type: "button", class: "btn btn-ghost btn-sm job-cancel", onclick: () => onCancel() },
    icon("stop"), h("span", { i18n: "turn.cancel" }));
  const notify = notificationsAvailable() && !notifying() && Notification.permission !== "denied"
    ? h("button", { type: "button", class: "btn btn-ghost btn-sm job-notify", i18nLabel: "job.notifyLabel" },
      h("span", { i18n: "job.notify" }))
    : null;
  notify?.addEventListener("click", async () => {
    const granted = await enableNotifications();
    for (const button of document.querySelectorAll(".job-notify")) button.remove();
    if (!granted) toast(t("job.notifyDenied"));
  });
  const el = h("article", { class: "msg msg-assistant pending", "aria-busy": "true" }, avatar(),
    h("div", { class: "msg-body" },
      h("div", { class: "working" },
        h("span", { class: "spinner", "aria-hidden": "true" }),
        h("span", { class: "job-line", role: "status" }, status, elapsed),
        wait,
        h("span", { class: "job-actions" }, notify, cancel)),
      skeletons));

  let job = null;
  let cancelling = false;
  let since = Date.now(); // the clock's origin: sent, then started_at
  let waitSince = 0; // when the current retry's wait began (as this page heard it)
  const render = () => {
    const [name, phrase] = jobPhrase(job, cancelling);
    el.dataset.state = name;
    // Rewritten only when it changes: it is a live region.
    if (status.textContent !== phrase) status.textContent = phrase;
    const ticking = job?.status !== "queued";
    elapsed.hidden = !ticking;
    if (ticking) elapsed.textContent = clock((Date.now() - since) / 1000);
    // Outside the live region: it changes every second.
    const remaining = name === "retrying" ? (job.retry.delay_s || 0) - (Date.now() - waitSince) / 1000 : 0;
    wait.hidden = remaining <= 0;
    if (remaining > 0) wait.textContent = waitPhrase(job.retry, remaining);
    cancel.disabled = name === "cancelling";
  };
  render();
  // Each second, also so that a language switch reaches the phrase.
  const timer = setInterval(render, 1000);
  return {
    el,
    set onCancel(handler) {
      onCancel = handler;
    },
    show(next) {
      if (next.status === "running" && job?.status !== "running") {
        const started = Date.parse(next.started_at || "");
        // Another clock: never in the future, so it never shows less than 0.
        since = Number.isNaN(started) ? Date.now() : Math.min(started, Date.now());
      }
      if (next.retry && next.retry.attempt !== job?.retry?.attempt) waitSince = Date.now();
      job = next;
      render();
    },
    cancelling(on) {
      cancelling = on;
      render();
    },
    stop: () => clearInterval(timer),
  };
}

/** A quota or budget refusal that lasts: when it lifts, and no retry button. */
function quotaFailure(error) {
  const card = errorCard({
    message: error.message || t("error.unknown"),
    // In the browser's clock, which may not be the server's QUOTA_TIMEZONE.
    note: resetPhrase({ resetsAt: error.body?.resets_at, retryAfter: error.retryAfter }),
    code: error.code,
  });
  card.classList.add("is-quota");
  return h("article", { class: "msg msg-assistant failed" }, avatar(), h("div", { class: "msg-body" }, card));
}

function aboutSpan(seconds) {
  if (seconds < 3600) return t("rel.minutes", { n: Math.max(1, Math.ceil(seconds / 60)) });
  if (seconds < 48 * 3600) return t("rel.hours", { n: Math.max(1, Math.round(seconds / 3600)) });
  return t("rel.days", { n: Math.round(seconds / 86400) });
}

/** "Try again after 09:00 (in about 20 h)." — a long wait as a time of day, not seconds. */
function tryAfterPhrase(seconds) {
  const when = new Date(Date.now() + seconds * 1000);
  const rel = aboutSpan(seconds);
  if (seconds < 24 * 3600) {
    return t("turn.tryAfter", { time: new Intl.DateTimeFormat(locale(), { timeStyle: "short" }).format(when), rel });
  }
  const date = new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(when);
  return t("turn.tryOn", { date, rel });
}

function retryButton(error, onRetry) {
  const retry = h("button", { type: "button", class: "btn btn-secondary btn-sm retry-btn" });
  const label = h("span");
  retry.append(icon("retry"), label);
  let remaining = error.retryAfter || 0;
  let timer = null;
  const tick = () => {
    if (remaining > 0) {
      retry.disabled = true;
      delete label.dataset.i18n;
      label.textContent = t("turn.retryIn", { s: remaining });
      retry.dataset.countdown = String(remaining);
      remaining -= 1;
    } else {
      clearInterval(timer);
      retry.disabled = false;
      delete retry.dataset.countdown;
      label.dataset.i18n = "common.retry";
      label.textContent = t("common.retry");
    }
  };
  tick();
  if (retry.disabled) timer = setInterval(tick, 1000);
  retry.addEventListener("click", () => {
    if (sending()) {
      toast(t("composer.busy"), { timeout: 2500 });
      return;
    }
    clearInterval(timer);
    onRetry();
  });
  return retry;
}

/** A refusal that fails the same way every time: the prompt goes back to the box instead. */
function editPromptButton(turn) {
  return h("button", {
    type: "button",
    class: "btn btn-secondary btn-sm edit-prompt-btn",
    onclick: () => emit("edit-prompt", { prompt: turn.prompt }),
  }, icon("pencil"), h("span", { i18n: "turn.editPrompt" }));
}

// Refusals that a second try gets again: the prompt (or its images) must change.
const BLOCKED_CODES = new Set(["content_blocked"]);

/**
 * An error that fits its wait: a Retry counting down a short Retry-After; a
 * long one as a time of day, without a button; a blocked prompt offers to
 * edit the prompt. A cancel says what it stopped (error.noteKey).
 */
function failure(error, turn, onRetry) {
  const isCancel = error.name === "AbortError";
  const quota = QUOTA_CODES.has(error.code);
  const wait = isCancel ? 0 : waitSeconds(error);
  const long = wait > LONG_WAIT_S;
  if (quota && long) return quotaFailure(error);
  const blocked = BLOCKED_CODES.has(error.code);
  const action = isCancel || (!long && !blocked)
    ? (onRetry ? retryButton(error, onRetry) : null)
    : blocked && turn ? editPromptButton(turn) : null;
  const card = errorCard({
    message: isCancel ? t("turn.cancelled") : quota ? quotaMessage(error) : error.message || t("error.unknown"),
    code: isCancel ? null : error.code,
    noteKey: isCancel ? error.noteKey : null,
    note: long ? tryAfterPhrase(wait) : null,
    // Google's own words (English), for the cases where they say more.
    upstream: isCancel ? null : error.body?.upstream_message,
  }, action ? h("div", { class: "error-actions" }, action) : null);
  if (isCancel) {
    card.classList.add("is-cancelled");
    card.querySelector(".error-message").dataset.i18n = "turn.cancelled";
  }
  if (long) card.classList.add("is-long-wait");
  if (blocked) card.classList.add("is-blocked");
  return h("article", { class: "msg msg-assistant failed" }, avatar(), h("div", { class: "msg-body" }, card));
}

/** A failed job's error in the shape of a refused request. */
function jobError(job) {
  const error = job.error || {};
  return new ApiError({
    status: 0,
    code: error.error || "job_failed",
    message: error.message || t("error.unknown"),
    retryAfter: error.retry_after == null ? null : Math.ceil(error.retry_after),
    body: error,
  });
}

/** What a cancel did: never sent (queued, or before the job existed), or stopped after a try. */
function cancelled(job) {
  const started = Boolean(job?.started_at || job?.attempts);
  return { name: "AbortError", noteKey: started ? "turn.stoppedNothing" : "turn.cancelledUnsent" };
}

function buildRequest(turn) {
  const params = { ...turn.params };
  if (turn.convId) params.conv_id = turn.convId;
  if (turn.convId && turn.retryOf) params.retry_of = turn.retryOf;
  if (turn.mode === "generate") return { url: "/v1/generate", options: { json: { prompt: turn.prompt, ...params } } };
  const form = new FormData();
  form.append("prompt", turn.prompt);
  for (const [name, value] of Object.entries(params)) form.append(name, String(value));
  for (const id of turn.sourceIds) form.append("source_image_ids", String(id));
  turn.files.forEach((file, index) => form.append("files", file, file.name || `image-${index + 1}.png`));
  return { url: `/v1/${turn.mode}`, options: { form } };
}

/**
 * Run one turn: the user's message at once, then the placeholder, then the
 * answer. turn = {prompt, mode, params, files, sourceIds, inputs, convId}.
 * Resolves once the job has ended with {ok, view}: ok is false when it
 * failed or was cancelled before making anything; view, the thread it was
 * sent from (see state.view).
 */
export function startTurn(turn) {
  const userEl = userMessage({
    prompt: turn.prompt,
    kind: turn.mode,
    inputs: turn.inputs,
    when: new Date().toISOString(),
    saved: Boolean(turn.convId),
  });
  messagesEl().append(userEl);
  updateEmpty();
  const view = state.view;
  return runTurn(turn, userEl).then((result) => ({ ok: Boolean(result), view }));
}

/** A cancel that came while the upstream call was in flight: that call is kept and billed. */
function lateCancelNote(data, asked) {
  const made = (data.images || []).length;
  return made < asked ? t("turn.stoppedPartial", { n: made, m: asked }) : t("turn.stoppedBilled");
}

/** The answer in place of the placeholder, and the user's turn as stored. */
async function showResult(data, { turn, userEl, pending, view, fromJob = false, canceled = false, asked = 1 }) {
  const stored = data.message;
  if (stored && messagesEl().querySelector(`.msg-assistant[data-id="${stored.id}"]`)) {
    // The thread was read after the job ended: it is drawn already, once.
    pending.el.remove();
    userEl.remove();
    return;
  }
  const images = stored?.images?.length
    ? stored.images.map(storedImage)
    : fromJob
      ? await Promise.all((data.images || []).map((url) => jobImage(url)))
      : (data.images || []).map((b64) => localImage(b64));
  if (view !== state.view) return;
  const message = stored
    ? { ...stored, warnings: data.warnings || [] }
    : {
      texts: data.texts,
      model: data.model,
      usage: data.usage,
      duration_ms: fromJob ? data.duration_ms : undefined,
      warnings: data.warnings || [],
      created_at: new Date().toISOString(),
      params: turn?.params,
    };
  if (data.user_message) userEl.replaceWith(renderStored([data.user_message])[0]);
  const answer = assistantMessage(message, images, turn?.prompt || stored?.prompt || "",
    canceled ? lateCancelNote(data, asked) : null);
  if (canceled) answer.classList.add("is-stopped");
  pending.el.replaceWith(answer);
  scrollToBottom();
  $("#announcer").textContent = images.length === 1
    ? t("turn.readyOne") : t("turn.ready", { n: images.length });
  emit("turn-finished", { images, canceled, convId: turn?.convId ?? data.conversation_id ?? null });
}

function showFailure(error, { turn, userEl, pending }) {
  // Retry is the same turn: its card gives way to the new placeholder, under the same prompt.
  const failed = failure(error, turn, turn ? () => {
    failed.remove();
    // The server stored the failure (message_id): the retry replaces it there too.
    const stored = error.body?.message_id;
    runTurn(stored && turn.convId ? { ...turn, retryOf: stored } : turn, userEl);
  } : null);
  pending.el.replaceWith(failed);
  scrollToBottom();
  emit("turn-failed", { error, convId: turn?.convId ?? null });
}

async function runTurn(turn, userEl) {
  const view = state.view;
  const asked = turn.params.candidate_count || 1;
  const pending = placeholder(asked, turn.params.aspect_ratio);
  // Until the job exists there is nothing to cancel on the server: the
  // cancel waits for it (an aborted upload may still have made one).
  let cancelWanted = false;
  pending.onCancel = () => {
    cancelWanted = true;
    pending.cancelling(true);
  };
  userEl.after(pending.el);
  scrollToBottom();
  emit("turn-sent", { convId: turn.convId, prompt: turn.prompt });
  // Only while the request is in flight, and only for this thread.
  sendingIn.add(view);
  state.busy = true;
  emit("busy", true);
  const { url, options } = buildRequest(turn);
  let data;
  try {
    data = await submitJob(url, options);
  } catch (error) {
    pending.stop();
    if (!(error instanceof ApiError)) throw error;
    if (view === state.view) showFailure(error, { turn, userEl, pending });
    return null;
  } finally {
    sendingIn.delete(view);
    state.busy = sendingIn.size > 0;
    emit("busy", sending());
  }
  if (!isJob(data)) {
    // The synchronous answer (a server that does not run jobs).
    pending.stop();
    if (view === state.view) await showResult(data, { turn, userEl, pending, view, asked });
    return data;
  }
  noteActivity(data.conversation_id);
  if (view !== state.view) {
    if (cancelWanted) cancelJob(data.id).catch((error) => {
      if (!(error instanceof ApiError)) throw error;
    });
    return data;
  }
  const meta = { count: asked, aspect: turn.params.aspect_ratio || null };
  if (!data.conversation_id) rememberAnonymousJob(data.id, meta);
  return trackJob(data, { turn, userEl, pending, view, asked, cancelNow: cancelWanted });
}

async function requestCancel(follower, pending) {
  pending.cancelling(true);
  try {
    follower.push(await cancelJob(follower.job.id));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    // job_finished: its final event is on the way, and shows what it became.
    if (error.code !== "job_finished") {
      pending.cancelling(false);
      toast(error.message, { kind: "error" });
    }
  }
}

/** Follow a submitted job in its placeholder, then draw how it ended. */
async function trackJob(job, { turn, userEl, pending, view, asked = 1, resumed = false, cancelNow = false }) {
  // A turn made without an account names its job: logging in can file it (keepUnsavedTurns).
  if (!job.conversation_id && userEl) userEl.dataset.job = job.id;
  const follower = followJob(job, (update) => {
    if (view === state.view) pending.show(update);
  });
  followers.set(follower, job.conversation_id ? null : job.id);
  pending.onCancel = () => requestCancel(follower, pending);
  if (cancelNow) requestCancel(follower, pending);
  const final = await follower.done;
  followers.delete(follower);
  pending.stop();
  // Closed: the thread was replaced (the job goes on; it shows where it is stored).
  if (!final) return follower.job;
  if (final.conversation_id) refreshActivity();
  else forgetAnonymousJob(final.id);
  if (view !== state.view) return final.result;
  if (final.status === "gone") {
    pending.el.remove();
    if (resumed) userEl.remove();
    else showFailure(jobError({ error: { error: "job_gone", message: t("job.gone") } }), { turn, userEl, pending });
    return null;
  }
  announceFinished(final, { images: final.result?.images?.length || 0 });
  // Cancelled while its upstream call was in flight: what that call made is
  // kept (billed, and stored in the conversation), so it is shown, saying so;
  // it never becomes what the next prompt edits.
  if (final.result) {
    const canceled = final.status === "canceled";
    await showResult(final.result, { turn, userEl, pending, view, fromJob: true, canceled, asked });
    return final.result;
  }
  if (resumed && final.status === "failed" && final.conversation_id) {
    // The failure is stored in the conversation, perhaps already read with
    // it: reading the thread again shows it exactly once.
    if (state.currentConvId === final.conversation_id) showConversation(final.conversation_id);
    return null;
  }
  showFailure(final.status === "canceled" ? cancelled(final) : jobError(final), { turn, userEl, pending });
  return null;
}

/** The job's own options (the server keeps them), else what this tab remembered. */
function metaOfJob(job, meta = {}) {
  const options = job.options || {};
  return { count: options.candidate_count || meta.count || 1, aspect: options.aspect_ratio || meta.aspect || null };
}

/** What a Retry sends again for a job drawn from the server (no files: generate only). */
function turnOfJob(job, meta = {}) {
  if (job.kind !== "generate") return null;
  const params = { ...(job.options || {}), model: job.model };
  if (meta.count > 1) params.candidate_count = meta.count;
  if (meta.aspect) params.aspect_ratio = meta.aspect;
  return {
    prompt: job.prompt, mode: "generate", params, files: [], sourceIds: [], inputs: [], convId: job.conversation_id,
  };
}

/** A job sent before a reload (or from another device): its turn, followed to the end. */
function resumeJob(job, remembered = {}) {
  const meta = metaOfJob(job, remembered);
  const userEl = userMessage({
    prompt: job.prompt,
    kind: job.kind,
    when: job.created_at,
    saved: Boolean(job.conversation_id),
  });
  const pending = placeholder(meta.count || 1, meta.aspect);
  messagesEl().append(userEl, pending.el);
  updateEmpty();
  return trackJob(job, {
    turn: turnOfJob(job, meta), userEl, pending, view: state.view, asked: meta.count || 1, resumed: true,
  });
}

/**
 * Without an account jobs belong to no conversation: this tab remembers
 * them, and draws the unfinished (or unseen) ones again after a reload or
 * a "New conversation".
 */
export async function resumeAnonymousJobs() {
  const view = state.view;
  const known = new Set([...followers.values()].filter(Boolean));
  const found = await Promise.all(anonymousJobs().filter((meta) => !known.has(meta.id)).map(async (meta) => {
    try {
      return { job: await fetchJob(meta.id), meta };
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status >= 400 && error.status < 500) forgetAnonymousJob(meta.id);
      return null;
    }
  }));
  if (view !== state.view || state.user) return;
  for (const entry of found) if (entry) resumeJob(entry.job, entry.meta);
  if (found.some(Boolean)) scrollToBottom();
}

// ---- what was made without an account, when the user logs in ------------------------------

/** How many turns on the page were made without an account (none of them stored). */
export function unsavedTurns() {
  return messagesEl().querySelectorAll(".msg-user[data-unsaved]").length;
}

/**
 * Logged in with results made before: they stay on the page, under a note
 * that says they are not in the history yet, with a button that files them
 * into a new conversation (POST /v1/jobs/{id}/save: the images already
 * made, no new upstream call); otherwise they leave with the next
 * conversation opened.
 */
export function keepUnsavedTurns() {
  messagesEl().querySelector(".unsaved-note")?.remove();
  const save = h("button", { type: "button", class: "btn btn-secondary btn-sm save-unsaved", i18n: "anon.saveKept" });
  const note = h("aside", { class: "unsaved-note", role: "note" },
    icon("info"),
    h("div", {}, h("p", { i18n: "anon.keptNote" }), save));
  save.addEventListener("click", () => saveUnsavedTurns(save));
  messagesEl().append(note);
  updateEmpty();
  scrollToBottom();
}

/** The turns made without an account, in order, filed into a new conversation, which opens. */
async function saveUnsavedTurns(button) {
  const jobs = [...messagesEl().querySelectorAll(".msg-user[data-unsaved][data-job]")]
    .map((element) => element.dataset.job);
  button.disabled = true;
  try {
    const conversation = await api.post("/conversations", { json: {} });
    let saved = 0;
    for (const id of jobs) {
      try {
        await api.post(`/v1/jobs/${encodeURIComponent(id)}/save`, { json: { conv_id: conversation.id } });
        saved += 1;
      } catch (error) {
        // Failed, still running or gone (an hour after): nothing to file.
        if (!(error instanceof ApiError) || ![404, 409].includes(error.status)) throw error;
      }
    }
    toast(t("anon.savedKept", { n: saved }));
    emit("conversations-settled", [conversation.id]);
    emit("open-conversation", conversation.id);
  } catch (error) {
    button.disabled = false;
    if (!(error instanceof ApiError)) throw error;
    toast(error.message, { kind: "error" });
  }
}
