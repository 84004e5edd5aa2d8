// Page-wide widgets: toasts, the confirmation dialog, drawers, and the
// measures the layout follows (the composer's height, the visible thread).

import { $, h } from "./dom.js";
import { icon } from "./icons.js";

// ---- toasts ------------------------------------------------------------------
// They sit just above the composer (see followComposer), never over the
// banners, the thread's title or the phone's filter field, and in the top
// layer (a manual popover) so an open dialog or the viewer doesn't hide them.

function raiseToasts(box) {
  if (!box.showPopover) return;
  const open = box.matches(":popover-open");
  // A modal dialog opened after the layer covers it: shown again, it is on top.
  if (open && !document.querySelector("dialog:modal")) return;
  if (open) box.hidePopover();
  box.showPopover();
}

export function toast(message, { kind = "info", timeout = 4000 } = {}) {
  const box = $("#toasts");
  raiseToasts(box);
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

// ---- layout: the composer floats over the end of the thread ------------------------------

// thread.js's own idea of "following the newest message" uses the same margin.
const AT_END_PX = 48;

/**
 * The thread keeps room for the composer below its last message
 * (--composer-h); when the composer grows (the editing chip, attachments, a
 * longer prompt) a thread that showed its end scrolls along, so the newest
 * result and its buttons are never under the composer. --result-max-h (in
 * CSS) bounds a picture's height by the thread visible above the composer.
 */
function followComposer() {
  const root = document.documentElement.style;
  const main = $("#main");
  const thread = $("#thread");
  const composer = $("#composer");
  const prompt = $("#prompt");
  let composerHeight = 0;
  const measure = () => {
    const height = Math.ceil(composer.getBoundingClientRect().height);
    // Read before the new room is applied: was the end of the thread in view?
    const fromEnd = thread.scrollHeight - thread.scrollTop - thread.clientHeight;
    const grew = height - composerHeight;
    composerHeight = height;
    root.setProperty("--composer-h", `${height}px`);
    // What the thread shows above the composer at rest: the pictures keep
    // their size while attachments come and go and a long prompt is typed.
    const attachments = $("#attachments");
    const typing = Math.max(0, prompt.offsetHeight - (parseFloat(getComputedStyle(prompt).minHeight) || 0));
    const resting = height - typing - (attachments.hidden ? 0 : attachments.offsetHeight);
    root.setProperty("--thread-visible-h", `${Math.max(0, thread.clientHeight - resting)}px`);
    root.setProperty("--thread-scrollbar", `${thread.offsetWidth - thread.clientWidth}px`);
    const box = main.getBoundingClientRect();
    root.setProperty("--main-center", `${Math.round(box.left + box.width / 2)}px`);
    if (grew > 0 && fromEnd < AT_END_PX && $("#messages").children.length) {
      thread.scrollTop = thread.scrollHeight;
    }
  };
  const observer = new ResizeObserver(measure);
  for (const el of [composer, thread, main]) observer.observe(el);
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

/** Drawers, and the layout measures the page follows (main.js calls this once). */
export function initDrawers() {
  followComposer();
  raiseToasts($("#toasts"));
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
