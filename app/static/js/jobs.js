// The job client (background generations, docs: jobs contract): submit with
// `Prefer: respond-async`, follow a job over its event stream (or by polling
// when the stream is refused or breaks before its first event), cancel, list
// a conversation's unfinished jobs, remember an anonymous caller's jobs for a
// reload, know which conversations have work in progress, and tell the user
// about results that arrived while the tab was away.

import { api, ApiError } from "./api.js";
import { t } from "./i18n.js";
import { prefs } from "./prefs.js";
import { emit, state } from "./state.js";

const EVENTS = ["queued", "running", "retrying", "succeeded", "failed", "canceled"];
const FINAL = new Set(["succeeded", "failed", "canceled"]);
const POLL_MS = 2000;
const POLL_MAX_MS = 10000;
// A stream quiet this long (only heartbeats, or a proxy holding the events
// back) gets one look at the job itself, so a missed event can't strand it.
const QUIET_MS = 30000;
const ANON_KEY = "nb.jobs";
// While some conversation has work in progress, the list of unfinished jobs
// is read this often, so a mark clears soon after its job ends elsewhere.
const ACTIVITY_MS = 4000;

const jobUrl = (id) => `/v1/jobs/${encodeURIComponent(id)}`;

export const isFinal = (job) => FINAL.has(job?.status);

/** A 202's body is a job; a server that ignored the preference answers the sync shape. */
export const isJob = (data) => typeof data?.id === "string" && typeof data?.status === "string";

/** POST a generation as a background job: the job object (or the sync answer). */
export function submitJob(url, options) {
  return api.post(url, { ...options, headers: { Prefer: "respond-async" } });
}

/** DELETE: the job back (canceled at once, or cancel_requested while it runs). */
export function cancelJob(id) {
  return api.delete(jobUrl(id));
}

/** The conversation's queued and running jobs, oldest first (the order they were sent). */
export async function activeJobs(convId) {
  const params = new URLSearchParams({ status: "active", conv_id: String(convId), limit: "50" });
  const page = await api.get(`/v1/jobs?${params}`);
  return [...(page?.jobs || [])].reverse();
}

export function fetchJob(id) {
  return api.get(jobUrl(id));
}

/**
 * Follow a job to its end. `onUpdate(job)` gets every state (the first one at
 * once); `done` resolves with the final job, with a copy whose status is
 * "gone" when the server no longer knows it, or with null after close().
 * `push(job)` feeds in a state learnt elsewhere (the answer to a DELETE).
 */
export function followJob(first, onUpdate) {
  let source = null;
  let timer = null;
  let quiet = null;
  let polling = false;
  let closed = false;
  let heard = false; // an event arrived on the stream
  let last = first;
  let delay = POLL_MS;
  let finish;
  const done = new Promise((resolve) => {
    finish = resolve;
  });

  const stop = (outcome) => {
    if (closed) return;
    closed = true;
    source?.close();
    source = null;
    clearTimeout(timer);
    clearTimeout(quiet);
    finish(outcome);
  };
  const take = (job) => {
    if (closed || !job || job.id !== first.id) return;
    last = job;
    onUpdate(job);
    if (isFinal(job)) stop(job);
  };
  const poll = async () => {
    timer = null;
    if (closed) return;
    try {
      take(await fetchJob(first.id));
      delay = POLL_MS;
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      if (error.status === 404 || error.status === 401 || error.status === 403) {
        stop({ ...last, status: "gone" });
        return;
      }
      // The server is busy or away for a moment: ask again, less often.
      delay = Math.min(POLL_MAX_MS, Math.max(delay * 2, (error.retryAfter || 0) * 1000));
    }
    if (!closed) timer = setTimeout(poll, delay);
  };
  const look = async () => {
    quiet = null;
    if (closed || polling) return;
    try {
      take(await fetchJob(first.id));
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
    }
    if (!closed && !polling) quiet = setTimeout(look, QUIET_MS);
  };
  const watchQuiet = () => {
    clearTimeout(quiet);
    quiet = setTimeout(look, QUIET_MS);
  };
  const startPolling = () => {
    source?.close();
    source = null;
    clearTimeout(quiet);
    if (closed || polling) return;
    polling = true;
    timer = setTimeout(poll, heard ? 0 : POLL_MS);
  };

  take(first);
  if (!closed) {
    if (typeof EventSource === "undefined") {
      startPolling();
    } else {
      source = new EventSource(first.links?.events || `${jobUrl(first.id)}/events`);
      for (const name of EVENTS) {
        source.addEventListener(name, (event) => {
          heard = true;
          watchQuiet();
          let job = null;
          try {
            job = JSON.parse(event.data);
          } catch {
            return; // not a job: the next event (or a look) will tell
          }
          take(job);
        });
      }
      watchQuiet();
      // EventSource can't read the status of a refusal (429 too_many_streams,
      // 503 streams_full): an error before any event, or one it won't retry
      // (the stream is CLOSED), means polling. Otherwise it reconnects by
      // itself and resumes from Last-Event-ID.
      source.addEventListener("error", () => {
        if (closed || !source) return;
        if (!heard || source.readyState === EventSource.CLOSED) startPolling();
      });
    }
  }
  return {
    done,
    push: take,
    close: () => stop(null),
    get job() {
      return last;
    },
  };
}

/**
 * A result image of a job with no conversation (a URL the server keeps for an
 * hour): fetched once into a blob, like localImage's, so it stays on the page
 * and can be sent back as the next edit's upload.
 */
export async function jobImage(url) {
  try {
    const response = await fetch(url, { credentials: "same-origin" });
    if (!response.ok) throw new Error(`HTTP ${response.status}`);
    const blob = await response.blob();
    const local = URL.createObjectURL(blob);
    return { id: null, url: local, thumb: local, blob, mime: blob.type || "image/png" };
  } catch {
    return { id: null, url, thumb: url, mime: "image/png" };
  }
}

// ---- an anonymous caller's jobs, kept for a reload (they belong to no conversation) ----

function readAnonymous() {
  try {
    const list = JSON.parse(sessionStorage.getItem(ANON_KEY) || "[]");
    return Array.isArray(list) ? list.filter((item) => typeof item?.id === "string") : [];
  } catch {
    return [];
  }
}

function writeAnonymous(list) {
  try {
    if (list.length) sessionStorage.setItem(ANON_KEY, JSON.stringify(list));
    else sessionStorage.removeItem(ANON_KEY);
  } catch {
    /* storage unavailable: a reload then forgets the job */
  }
}

/** `meta` = what the page needs to draw the turn again: {count, aspect}. */
export function rememberAnonymousJob(id, meta = {}) {
  writeAnonymous([...readAnonymous().filter((item) => item.id !== id), { id, ...meta }]);
}

export function forgetAnonymousJob(id) {
  writeAnonymous(readAnonymous().filter((item) => item.id !== id));
}

export function anonymousJobs() {
  return readAnonymous();
}

// ---- which conversations have work in progress (the sidebar marks them) ----------------

let working = new Set();
let activityTimer = null;
let activityRound = 0;

function publishActivity(next) {
  const settled = [...working].filter((id) => !next.has(id));
  const changed = settled.length || [...next].some((id) => !working.has(id));
  working = next;
  if (changed) emit("activity", new Set(working));
  // Their jobs ended while nobody drew them: the list shows the new result.
  if (settled.length) emit("conversations-settled", settled);
}

function scheduleActivity() {
  clearTimeout(activityTimer);
  activityTimer = working.size && state.user ? setTimeout(refreshActivity, ACTIVITY_MS) : null;
}

/** Read which conversations have queued or running jobs (the caller's, any device). */
export async function refreshActivity() {
  clearTimeout(activityTimer);
  activityTimer = null;
  const round = ++activityRound;
  if (!state.user) {
    publishActivity(new Set());
    return;
  }
  // A hidden tab waits: the next look comes when it is shown again.
  if (document.hidden) return;
  try {
    const page = await api.get("/v1/jobs?status=active&limit=100");
    if (round !== activityRound) return;
    publishActivity(new Set((page?.jobs || []).map((job) => job.conversation_id).filter(Boolean)));
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
  }
  if (round === activityRound) scheduleActivity();
}

/** A job was just sent to this conversation: mark it at once, then keep looking. */
export function noteActivity(convId) {
  if (!convId || !state.user) return;
  if (!working.has(convId)) publishActivity(new Set([...working, convId]));
  if (!activityTimer) scheduleActivity();
}

export function workingConversations() {
  return new Set(working);
}

// ---- results that arrive while the tab is hidden ----------------------------------------

let baseTitle = document.title;
let unseen = 0;

function applyTitle() {
  document.title = unseen ? `(${unseen}) ✓ ${baseTitle}` : baseTitle;
}

/** The page's own title; a mark for unseen results goes in front of it. */
export function setPageTitle(title) {
  baseTitle = title;
  applyTitle();
}

export function notificationsAvailable() {
  return typeof Notification !== "undefined" && window.isSecureContext !== false;
}

/** Whether results should be announced by a browser notification. */
export function notifying() {
  return notificationsAvailable() && Notification.permission === "granted" && Boolean(prefs.get("notifyDone"));
}

/** From a click only: browsers ignore (and penalise) a permission prompt on load. */
export async function enableNotifications() {
  if (!notificationsAvailable()) return false;
  let permission = Notification.permission;
  if (permission === "default") permission = await Notification.requestPermission();
  const granted = permission === "granted";
  prefs.set("notifyDone", granted || null);
  return granted;
}

/** A job ended: when nobody is looking, mark the title and maybe notify. */
export function announceFinished(job, { images = 0 } = {}) {
  if (!document.hidden) return;
  unseen += 1;
  applyTitle();
  if (!notifying()) return;
  const title = job.result
    ? (images === 1 ? t("turn.readyOne") : t("turn.ready", { n: images }))
    : job.status === "canceled" ? t("turn.cancelled") : t("job.failedTitle");
  try {
    const note = new Notification(title, { body: job.prompt || "", tag: `nb-job-${job.id}` });
    note.addEventListener("click", () => {
      window.focus();
      note.close();
    });
  } catch {
    /* some browsers allow notifications only from a service worker */
  }
}

export function initJobs() {
  document.addEventListener("visibilitychange", () => {
    if (document.hidden) return;
    if (unseen) {
      unseen = 0;
      applyTitle();
    }
    if (state.user) refreshActivity();
  });
}
