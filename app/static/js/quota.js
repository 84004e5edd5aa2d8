// How a quota refusal reads in both languages: when it lifts, and the
// server's message with it. Small and loaded with the page (thread.js words
// its errors with it); the usage panel (usage.js), with the figures'
// formatters, and the admin panel (admin.js) load when first needed.

import { locale, t } from "./i18n.js";

const HOUR_MS = 3600 * 1000;
// Longer than this, a refusal offers no retry button: waiting at the page makes no sense.
export const LONG_WAIT_S = 60;
export const QUOTA_CODES = new Set(["quota_exceeded", "budget_exhausted"]);

// ---- when a refusal lifts ----------------------------------------------------------------

function aboutSpan(ms) {
  if (ms < HOUR_MS) return t("rel.minutes", { n: Math.max(1, Math.ceil(ms / 60000)) });
  if (ms < 48 * HOUR_MS) return t("rel.hours", { n: Math.max(1, Math.round(ms / HOUR_MS)) });
  return t("rel.days", { n: Math.round(ms / (24 * HOUR_MS)) });
}

/** "Resets at 00:00 (in about 5 h)" from an ISO time, or from seconds to wait. */
export function resetPhrase({ resetsAt = null, retryAfter = null } = {}) {
  let when = resetsAt ? new Date(resetsAt) : null;
  if ((!when || Number.isNaN(when.getTime())) && retryAfter) when = new Date(Date.now() + retryAfter * 1000);
  if (!when || Number.isNaN(when.getTime())) return "";
  const ms = when.getTime() - Date.now();
  const rel = aboutSpan(Math.max(0, ms));
  if (ms < HOUR_MS) return t("quota.resetsSoon", { rel });
  if (ms < 24 * HOUR_MS) {
    const time = new Intl.DateTimeFormat(locale(), { timeStyle: "short" }).format(when);
    return t("quota.resetsAt", { time, rel });
  }
  const date = new Intl.DateTimeFormat(locale(), { dateStyle: "medium", timeStyle: "short" }).format(when);
  return t("quota.resetsOn", { date, rel });
}

/** Seconds until a quota refusal lifts, from its body or its Retry-After. */
export function waitSeconds(error) {
  const resetsAt = Date.parse(error.body?.resets_at || "");
  if (!Number.isNaN(resetsAt)) return Math.max(0, (resetsAt - Date.now()) / 1000);
  return error.retryAfter || 0;
}

/** The server's message plus when the refusal lifts. */
export function quotaMessage(error) {
  const when = resetPhrase({ resetsAt: error.body?.resets_at, retryAfter: error.retryAfter });
  return [error.message || t("error.unknown"), when].filter(Boolean).join(" ");
}
