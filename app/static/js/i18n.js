// Chinese and English for every visible string. The language follows the
// browser until the user picks one; the choice persists.
//
// The strings are in i18n/: only the active language's table is fetched,
// and what only an account shows (usage, API tokens, password, admin) is in
// a second table per language, loaded with the account's modules
// (loadStrings("account"), main.js). This module waits for the page's table
// before any module that imports it runs (a top-level await), so t() always
// has it. The other language is fetched on a switch, or as soon as the
// pointer or focus reaches the language button (preloadLang), so a switch
// seldom waits.

import { prefs } from "./prefs.js";

const TABLES = {
  en: { page: () => import("./i18n/en.js"), account: () => import("./i18n/en-account.js") },
  zh: { page: () => import("./i18n/zh.js"), account: () => import("./i18n/zh-account.js") },
};
const tables = { en: {}, zh: {} }; // language → the strings of its parts loaded so far
const loading = {}; // "language part" → the promise of that table
const parts = new Set(["page"]); // the parts the page uses: each language switch loads them all
const listeners = new Set();
let current = detect();
let wanted = current; // the language of the last setLang(), while its tables load

function loadPart(language, part) {
  const key = `${language} ${part}`;
  loading[key] ??= TABLES[language][part]().then(
    (module) => {
      Object.assign(tables[language], module.default);
      return module.default;
    },
    (error) => {
      delete loading[key]; // the next attempt asks again
      throw error;
    },
  );
  return loading[key];
}

/** Every part in use, in one language (parts added meanwhile included). */
async function loadLanguage(language) {
  let count;
  do {
    count = parts.size;
    await Promise.all([...parts].map((part) => loadPart(language, part)));
  } while (parts.size !== count);
}

await loadLanguage(current);

/** Load a part of the strings (in the active language, and in every later
 * one) and translate the markup that names its keys. */
export async function loadStrings(part) {
  parts.add(part);
  const strings = await loadPart(current, part);
  applyI18n(document, strings);
}

function detect() {
  const saved = prefs.get("lang");
  if (saved === "zh" || saved === "en") return saved;
  const languages = navigator.languages?.length ? navigator.languages : [navigator.language];
  return languages.some((tag) => /^zh\b/i.test(tag || "")) ? "zh" : "en";
}

export function lang() {
  return current;
}

/** BCP 47 tag for Intl formatters. */
export function locale() {
  return current === "zh" ? "zh-CN" : "en";
}

export function t(key, params = {}) {
  let text = tables[current][key] ?? tables.en[key] ?? key;
  for (const [name, value] of Object.entries(params)) {
    text = text.replaceAll(`{${name}}`, String(value));
  }
  return text;
}

/** Switch the page's language, once its tables are in; resolves when done. */
export async function setLang(next) {
  const language = next === "zh" ? "zh" : "en";
  wanted = language;
  await loadLanguage(language);
  if (wanted !== language) return; // another switch came after this one
  current = language;
  prefs.set("lang", current);
  applyI18n();
  for (const listener of listeners) listener(current);
}

/** Fetch a language's tables ahead of a switch to it (errors wait for the switch). */
export function preloadLang(language) {
  loadLanguage(language === "zh" ? "zh" : "en").catch(() => {});
}

export function onLangChange(listener) {
  listeners.add(listener);
}

const BINDINGS = [
  ["data-i18n", "i18n", (el, text) => { el.textContent = text; }],
  ["data-i18n-placeholder", "i18nPlaceholder", (el, text) => { el.placeholder = text; }],
  ["data-i18n-aria-label", "i18nAriaLabel", (el, text) => el.setAttribute("aria-label", text)],
  ["data-i18n-title", "i18nTitle", (el, text) => { el.title = text; }],
];

/** Translate the static markup: data-i18n (text), -placeholder, -aria-label,
 * -title. A key of a part not loaded yet keeps the markup's English until
 * loadStrings() brings it; `only` limits the work to one part's keys. */
export function applyI18n(root = document, only = null) {
  document.documentElement.lang = current === "zh" ? "zh-CN" : "en";
  const known = only || tables[current];
  for (const [attribute, name, set] of BINDINGS) {
    for (const el of root.querySelectorAll(`[${attribute}]`)) {
      const key = el.dataset[name];
      if (key in known) set(el, t(key));
    }
  }
}

const SECOND = 1000;
const MINUTE = 60 * SECOND;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** "5 min ago", "yesterday", or a date for anything older than a week. */
export function relativeTime(iso) {
  const then = new Date(iso);
  const diff = Date.now() - then.getTime();
  if (Number.isNaN(diff)) return "";
  if (diff < MINUTE) return t("time.justNow");
  const rtf = new Intl.RelativeTimeFormat(locale(), { numeric: "auto", style: "short" });
  if (diff < HOUR) return rtf.format(-Math.floor(diff / MINUTE), "minute");
  if (diff < DAY) return rtf.format(-Math.floor(diff / HOUR), "hour");
  if (diff < 7 * DAY) return rtf.format(-Math.floor(diff / DAY), "day");
  return new Intl.DateTimeFormat(locale(), { dateStyle: "medium" }).format(then);
}

export function clockTime(iso) {
  const then = new Date(iso);
  if (Number.isNaN(then.getTime())) return "";
  const sameDay = new Date().toDateString() === then.toDateString();
  const options = sameDay
    ? { timeStyle: "short" }
    : { dateStyle: "medium", timeStyle: "short" };
  return new Intl.DateTimeFormat(locale(), options).format(then);
}
