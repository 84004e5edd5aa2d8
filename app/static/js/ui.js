// Page-wide widgets: toasts, the confirmation dialog, drawers.

import { $, h } from "./dom.js";
import { icon } from "./icons.js";

// ---- toasts ------------------------------------------------------------------

export function toast(message, { kind = "info", timeout = 4000 } = {}) {
  const box = $("#toasts");
  const item = h("div", { class: `toast toast-${kind}`, role: kind === "error" ? "alert" : "status" },
    icon(kind === "error" ? "alert" : kind === "success" ? "check" : "info"),
    h("span", { text: message }));
  box.append(item);
  setTimeout(() => {
    item.classList.add("leaving");
    setTimeout(() => item.remove(), 250);
  }, timeout);
  return item;
}

// ---- confirmation --------------------------------------------------------------

/** Resolves true when the user confirms. */
export function confirmDialog({ title, text, ok }) {
  const dialog = $("#confirm-dialog");
  $("#confirm-title").textContent = title;
  $("#confirm-text").textContent = text;
  $("#confirm-ok").textContent = ok;
  dialog.returnValue = "";
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "ok"), { once: true });
    dialog.showModal();
    $("#confirm-cancel").focus();
  });
}

// ---- drawers (sidebar, settings) --------------------------------------------------

const NARROW = window.matchMedia("(max-width: 640px)");
const MEDIUM = window.matchMedia("(max-width: 1099px)");

function isDrawer(panel) {
  return panel.id === "sidebar" ? NARROW.matches : MEDIUM.matches;
}

function toggleButton(panel) {
  return panel.id === "sidebar" ? $("#open-sidebar") : $("#open-settings");
}

export function openDrawer(panel) {
  for (const other of document.querySelectorAll(".drawer.open")) {
    if (other !== panel) closeDrawer(other, { restoreFocus: false });
  }
  panel.classList.add("open");
  toggleButton(panel).setAttribute("aria-expanded", "true");
  $("#backdrop").hidden = false;
  // Keyboard and screen-reader focus stay in the drawer while it is open.
  for (const el of document.querySelectorAll(".topbar, .main, .drawer")) el.inert = el !== panel;
  document.body.classList.add("drawer-open");
  const target = panel.querySelector("[data-autofocus]") || panel.querySelector(".drawer-close");
  requestAnimationFrame(() => target?.focus());
}

export function closeDrawer(panel, { restoreFocus = true } = {}) {
  if (!panel.classList.contains("open")) return;
  panel.classList.remove("open");
  toggleButton(panel).setAttribute("aria-expanded", "false");
  if (!document.querySelector(".drawer.open")) {
    $("#backdrop").hidden = true;
    document.body.classList.remove("drawer-open");
    for (const el of document.querySelectorAll(".topbar, .main, .drawer")) el.inert = false;
  }
  if (restoreFocus) toggleButton(panel).focus();
}

/** On a wide screen the settings panel collapses in place; elsewhere it is a drawer. */
export function togglePanel(panel, { onCollapse } = {}) {
  if (isDrawer(panel)) {
    if (panel.classList.contains("open")) closeDrawer(panel);
    else openDrawer(panel);
  } else if (onCollapse) {
    onCollapse();
  }
}

export function closeDrawersIfNarrow() {
  for (const panel of document.querySelectorAll(".drawer.open")) {
    if (isDrawer(panel)) closeDrawer(panel, { restoreFocus: false });
  }
}

export function initDrawers() {
  $("#backdrop").addEventListener("click", () => {
    for (const panel of document.querySelectorAll(".drawer.open")) closeDrawer(panel);
  });
  for (const button of document.querySelectorAll("[data-close-drawer]")) {
    button.addEventListener("click", () => {
      const panel = button.closest(".drawer");
      if (isDrawer(panel)) closeDrawer(panel);
      else if (panel.id === "settings") $("#open-settings").click();
    });
  }
  // Every dialog's close button; the dialog puts focus back where it was.
  document.addEventListener("click", (event) => {
    const button = event.target.closest?.("[data-close-dialog]");
    if (button) button.closest("dialog")?.close();
  });
  document.addEventListener("keydown", (event) => {
    if (event.key !== "Escape" || event.defaultPrevented) return;
    const open = document.querySelector(".drawer.open");
    if (open && !document.querySelector("dialog[open]")) closeDrawer(open);
  });
  // Leaving the drawer breakpoint: no drawer state may linger.
  const reset = () => {
    for (const panel of document.querySelectorAll(".drawer.open")) {
      if (!isDrawer(panel)) closeDrawer(panel, { restoreFocus: false });
    }
  };
  NARROW.addEventListener("change", reset);
  MEDIUM.addEventListener("change", reset);
}

export function isNarrow() {
  return NARROW.matches;
}
