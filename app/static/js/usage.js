// What a user has spent and has left: the quota chip by the composer, the
// budget banner and the usage dialog with its per-day charts (inline SVG built
// with DOM calls, so the CSP's style-src 'self' holds). Loaded when someone
// logs in (main.js): a visitor without an account never needs it. A quota
// refusal's wording is in quota.js (loaded with the page); the admin panel
// reuses the charts and the formatters.

import { api, ApiError } from "./api.js";
import { $, h } from "./dom.js";
import { locale, t } from "./i18n.js";
import { resetPhrase } from "./quota.js";
import { on, state } from "./state.js";

const SVG = "http://www.w3.org/2000/svg";

let latest = null; // the last /me/usage answer for the current month
let shown = null; // what the dialog shows (its period may differ)

// ---- formatting ---------------------------------------------------------------------------

export function usd(value) {
  const number = Number(value) || 0;
  const small = number !== 0 && Math.abs(number) < 1;
  return new Intl.NumberFormat(locale(), {
    style: "currency",
    currency: "USD",
    minimumFractionDigits: 2,
    maximumFractionDigits: small ? 4 : 2,
  }).format(number);
}

export function integer(value) {
  return new Intl.NumberFormat(locale()).format(Number(value) || 0);
}

/** "Jun 3" for a YYYY-MM-DD day, read as a calendar date (no time zone shift). */
export function dayLabel(date, options = { month: "short", day: "numeric" }) {
  const parsed = new Date(`${date}T00:00:00Z`);
  if (Number.isNaN(parsed.getTime())) return String(date);
  return new Intl.DateTimeFormat(locale(), { ...options, timeZone: "UTC" }).format(parsed);
}

export function isoDay(date) {
  const pad = (n) => String(n).padStart(2, "0");
  return `${date.getFullYear()}-${pad(date.getMonth() + 1)}-${pad(date.getDate())}`;
}

// ---- the chip by the composer and the banner ------------------------------------------------

function left(entry) {
  if (!entry || entry.limit === null || entry.limit === undefined) return null;
  return Math.max(0, Number(entry.limit) - Number(entry.used || 0));
}

function renderChip() {
  const chip = $("#quota-chip");
  const quota = state.user ? latest?.quota : null;
  const daily = left(quota?.daily_images);
  const monthly = left(quota?.monthly_images);
  const dollars = left(quota?.monthly_usd);
  let text = null;
  let low = false;
  if (daily !== null || monthly !== null) {
    const useDaily = monthly === null || (daily !== null && daily <= monthly);
    const n = useDaily ? daily : monthly;
    const limit = Number((useDaily ? quota.daily_images : quota.monthly_images).limit) || 1;
    if (n === 0) text = t("quota.none");
    else if (n === 1) text = t(useDaily ? "quota.leftTodayOne" : "quota.leftMonthOne");
    else text = t(useDaily ? "quota.leftToday" : "quota.leftMonth", { n: integer(n) });
    low = n === 0 || n / limit <= 0.2;
  } else if (dollars !== null) {
    text = dollars <= 0 ? t("quota.none") : t("quota.leftUsd", { usd: usd(dollars) });
    low = dollars <= 0.1 * Number(quota.monthly_usd.limit);
  }
  chip.hidden = text === null;
  chip.classList.toggle("is-low", low);
  $("#quota-chip-text").textContent = text || "";
  chip.title = t("quota.open");
}

function renderBanner() {
  const exhausted = Boolean(state.user && latest?.budget?.exhausted);
  $("#banner-budget").hidden = !exhausted;
  if (!exhausted) return;
  const admin = Boolean(state.user?.is_admin);
  $("#banner-budget-text").textContent = t(admin ? "quota.budgetAdmin" : "quota.budgetUser");
  $("#banner-budget-short").textContent = t("quota.budgetShort");
}

export function budgetExhausted() {
  return Boolean(latest?.budget?.exhausted);
}

/** Fetch this month's figures again: after a turn, a login, an admin change. */
export async function refreshUsage() {
  if (!state.user) {
    latest = null;
  } else {
    try {
      latest = await api.get("/me/usage");
    } catch (error) {
      if (!(error instanceof ApiError)) throw error;
      latest = null;
    }
  }
  renderChip();
  renderBanner();
  return latest;
}

// ---- charts -------------------------------------------------------------------------------------

function svg(tag, attrs = {}, text = null) {
  const el = document.createElementNS(SVG, tag);
  for (const [name, value] of Object.entries(attrs)) el.setAttribute(name, String(value));
  if (text !== null) el.textContent = text;
  return el;
}

/** One bar per day; `label` is the accessible summary, the bars carry tooltips. */
function barChart(days, { value, format, label, kind, width }) {
  const height = 132;
  const top = 18;
  const bottom = 22;
  const plot = height - top - bottom;
  const values = days.map((day) => Number(day[value]) || 0);
  const peak = Math.max(0, ...values);
  const slot = width / Math.max(1, days.length);
  const barWidth = Math.max(1, Math.min(28, slot * 0.7));
  const chart = svg("svg", {
    class: `bar-chart chart-${kind}`,
    width,
    height,
    viewBox: `0 0 ${width} ${height}`,
    role: "img",
    "aria-label": label,
  });
  chart.append(
    svg("line", { class: "chart-grid", x1: 0, x2: width, y1: top, y2: top }),
    svg("text", { class: "chart-label", x: 0, y: top - 6 }, peak ? format(peak) : ""),
  );
  days.forEach((day, index) => {
    const size = peak ? (values[index] / peak) * plot : 0;
    const x = index * slot + (slot - barWidth) / 2;
    const bar = svg("rect", {
      class: "chart-bar",
      x: x.toFixed(1),
      y: (top + plot - size).toFixed(1),
      width: barWidth.toFixed(1),
      height: Math.max(0, size).toFixed(1),
      rx: Math.min(3, barWidth / 3).toFixed(1),
    });
    bar.append(svg("title", {}, `${dayLabel(day.date)}: ${format(values[index])}`));
    chart.append(bar);
  });
  chart.append(svg("line", { class: "chart-axis", x1: 0, x2: width, y1: top + plot, y2: top + plot }));
  const ticks = days.length > 12 ? [0, Math.floor((days.length - 1) / 2), days.length - 1] : [0, days.length - 1];
  for (const index of new Set(ticks)) {
    if (!days[index]) continue;
    const anchor = index === 0 ? "start" : index === days.length - 1 ? "end" : "middle";
    const x = index === 0 ? 0 : index === days.length - 1 ? width : index * slot + slot / 2;
    chart.append(svg("text", { class: "chart-label", x, y: height - 6, "text-anchor": anchor }, dayLabel(days[index].date)));
  }
  return chart;
}

function summary(days, value, format, key) {
  const from = dayLabel(days[0].date);
  const to = dayLabel(days[days.length - 1].date);
  const values = days.map((day) => Number(day[value]) || 0);
  const total = values.reduce((a, b) => a + b, 0);
  if (!total) return t("usage.chartEmpty", { from, to });
  const peakIndex = values.indexOf(Math.max(...values));
  return t(key, {
    from, to, total: format(total), peakDay: dayLabel(days[peakIndex].date), peak: format(values[peakIndex]),
  });
}

/** Two charts (images, cost) and the same figures as a table for screen readers. */
export function dayCharts(days, width) {
  const box = h("div", { class: "day-charts" });
  if (!days?.length) {
    box.append(h("p", { class: "muted small", text: t("usage.nothing") }));
    return box;
  }
  const chartWidth = Math.max(200, Math.floor(width));
  box.append(
    h("p", { class: "chart-title", "aria-hidden": "true", text: t("usage.images") }),
    barChart(days, {
      value: "images", format: integer, kind: "images", width: chartWidth,
      label: summary(days, "images", integer, "usage.chartImages"),
    }),
    h("p", { class: "chart-title", "aria-hidden": "true", text: t("usage.cost") }),
    barChart(days, {
      value: "cost_usd", format: usd, kind: "cost", width: chartWidth,
      label: summary(days, "cost_usd", usd, "usage.chartCost"),
    }),
    h("table", { class: "visually-hidden" },
      h("caption", { text: t("usage.tableCaption") }),
      h("thead", {}, h("tr", {},
        h("th", { scope: "col", text: t("usage.date") }),
        h("th", { scope: "col", text: t("usage.images") }),
        h("th", { scope: "col", text: t("usage.cost") }))),
      h("tbody", {}, ...days.map((day) => h("tr", {},
        h("th", { scope: "row", text: dayLabel(day.date, { dateStyle: "medium" }) }),
        h("td", { text: integer(day.images) }),
        h("td", { text: usd(day.cost_usd) }))))),
  );
  return box;
}

/** A small table: rows of {key..., images, cost_usd} under a first column named `head`. */
export function figuresTable(rows, head, name) {
  if (!rows?.length) return h("p", { class: "muted small", text: t("usage.nothing") });
  return h("table", { class: "figures" },
    h("thead", {}, h("tr", {},
      h("th", { scope: "col", text: head }),
      h("th", { scope: "col", class: "num", text: t("usage.images") }),
      h("th", { scope: "col", class: "num", text: t("usage.cost") }))),
    h("tbody", {}, ...rows.map((row) => h("tr", {},
      h("th", { scope: "row", text: name(row) }),
      h("td", { class: "num", text: integer(row.images) }),
      h("td", { class: "num", text: usd(row.cost_usd) })))));
}

export function totalText(images, cost) {
  return t(Number(images) === 1 ? "usage.totalOne" : "usage.total", { images: integer(images), cost: usd(cost) });
}

// ---- the dialog -------------------------------------------------------------------------------------

function periodRange(period) {
  const today = new Date();
  if (period === "last30") {
    const from = new Date(today);
    from.setDate(from.getDate() - 29);
    return { from: isoDay(from), to: isoDay(today) };
  }
  if (period === "lastMonth") {
    const first = new Date(today.getFullYear(), today.getMonth() - 1, 1);
    const last = new Date(today.getFullYear(), today.getMonth(), 0);
    return { from: isoDay(first), to: isoDay(last) };
  }
  return null; // this month: the server's own calendar (QUOTA_TIMEZONE)
}

function meter(labelKey, entry, format) {
  const limit = entry?.limit ?? null;
  const used = Number(entry?.used || 0);
  const share = limit ? Math.min(1, used / Number(limit)) : 0;
  const bar = h("span", { class: "meter-bar", "aria-hidden": "true" }, h("span", { class: "meter-fill" }));
  bar.firstChild.style.width = `${(share * 100).toFixed(1)}%`;
  bar.classList.toggle("is-full", limit !== null && share >= 1);
  return h("div", { class: "meter" },
    h("dt", { text: t(labelKey) }),
    h("dd", {},
      h("span", { class: "meter-figures", text: limit === null
        ? t("usage.usedNoLimit", { used: format(used) })
        : t("usage.usedOf", { used: format(used), limit: format(limit) }) }),
      limit === null ? null : bar,
      limit === null || !entry?.resets_at ? null
        : h("span", { class: "meter-reset", text: resetPhrase({ resetsAt: entry.resets_at }) })));
}

function renderDialog() {
  const dialog = $("#usage-dialog");
  if (!dialog.open) return;
  const data = shown;
  const quota = latest?.quota || data?.quota;
  $("#usage-quota").replaceChildren(
    meter("usage.today", quota?.daily_images, integer),
    meter("usage.month", quota?.monthly_images, integer),
    meter("usage.monthUsd", quota?.monthly_usd, usd));
  $("#usage-budget").hidden = !budgetExhausted();
  $("#usage-budget").textContent = t(state.user?.is_admin ? "quota.budgetAdmin" : "quota.budgetUser");
  const charts = $("#usage-charts");
  const days = data?.days || [];
  const width = charts.clientWidth || 480;
  charts.replaceChildren(dayCharts(days, width));
  const images = data?.total?.images ?? days.reduce((sum, day) => sum + (Number(day.images) || 0), 0);
  const cost = data?.total?.cost_usd ?? days.reduce((sum, day) => sum + (Number(day.cost_usd) || 0), 0);
  $("#usage-total").textContent = data ? totalText(images, cost) : "";
  $("#usage-models").replaceChildren(figuresTable(data?.models || [], t("usage.model"), (row) => row.model));
}

async function loadDialog() {
  const range = periodRange($("#usage-period").value);
  const query = range ? `?from=${range.from}&to=${range.to}` : "";
  $("#usage-error").hidden = true;
  $("#usage-dialog").setAttribute("aria-busy", "true");
  try {
    shown = await api.get(`/me/usage${query}`);
    if (!range) {
      latest = shown;
      renderChip();
      renderBanner();
    }
  } catch (error) {
    if (!(error instanceof ApiError)) throw error;
    shown = null;
    $("#usage-error").textContent = `${t("usage.loadFailed")} ${error.message}`;
    $("#usage-error").hidden = false;
  } finally {
    $("#usage-dialog").removeAttribute("aria-busy");
  }
  renderDialog();
}

export function openUsage() {
  if (!state.user) return;
  const dialog = $("#usage-dialog");
  if (!dialog.open) dialog.showModal();
  $("#usage-period").focus();
  loadDialog();
}

/** Wires the chip, the dialog and the events, then shows what belongs to
 * the user already logged in: it is loaded after that "user" event. */
export function initUsage() {
  $("#quota-chip").addEventListener("click", openUsage);
  $("#open-usage").addEventListener("click", openUsage);
  $("#usage-period").addEventListener("change", loadDialog);
  let width = 0;
  new ResizeObserver(() => {
    const now = $("#usage-charts").clientWidth;
    if (now && Math.abs(now - width) > 4) {
      width = now;
      renderDialog();
    }
  }).observe($("#usage-charts"));
  const onUser = (user) => {
    $("#usage-section").hidden = !user;
    if ($("#usage-dialog").open) $("#usage-dialog").close();
    refreshUsage();
  };
  on("user", onUser);
  on("turn-finished", refreshUsage);
  on("turn-failed", refreshUsage);
  on("quota-changed", refreshUsage);
  on("lang", () => {
    renderChip();
    renderBanner();
    renderDialog();
  });
  onUser(state.user);
}
