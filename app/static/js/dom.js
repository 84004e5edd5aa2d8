// Small DOM helpers. Text always goes in as text nodes: nothing here parses
// HTML, so model output and user titles can never become markup.

import { t } from "./i18n.js";
import { icon } from "./icons.js";

/**
 * h("button", {class: "btn", onclick: fn, dataset: {id: 1}}, "text", child)
 * Attributes starting with "on" become listeners; `false`/`null` are skipped.
 * `i18n: key` sets the text and `i18nLabel: key` the accessible name, both
 * kept up to date when the language changes (see applyI18n).
 */
export function h(tag, attrs = {}, ...children) {
  const el = document.createElement(tag);
  for (const [name, value] of Object.entries(attrs || {})) {
    if (value === false || value === null || value === undefined) continue;
    if (name === "class") el.className = value;
    else if (name === "dataset") Object.assign(el.dataset, value);
    else if (name.startsWith("on") && typeof value === "function") {
      el.addEventListener(name.slice(2), value);
    } else if (name === "text") el.textContent = value;
    else if (name === "i18n") {
      el.dataset.i18n = value;
      el.textContent = t(value);
    } else if (name === "i18nLabel") {
      el.dataset.i18nAriaLabel = value;
      el.dataset.i18nTitle = value;
      el.setAttribute("aria-label", t(value));
      el.title = t(value);
    } else if (name in el && typeof value !== "string") el[name] = value;
    else el.setAttribute(name, value === true ? "" : value);
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat()) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

/** An icon-only button with an accessible name: a text, or {key} to translate. */
export function iconButton(name, label, onclick, className = "icon-btn") {
  const naming = typeof label === "object" ? { i18nLabel: label.key } : { "aria-label": label, title: label };
  return h("button", { type: "button", class: className, onclick, ...naming }, icon(name));
}

export const $ = (selector, root = document) => root.querySelector(selector);
export const $$ = (selector, root = document) => [...root.querySelectorAll(selector)];

export function debounce(fn, ms) {
  let timer;
  return (...args) => {
    clearTimeout(timer);
    timer = setTimeout(() => fn(...args), ms);
  };
}
