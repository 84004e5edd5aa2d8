// What the page knows, in one object, and a tiny event bus so the parts of
// the page can react to each other without importing each other.

export const state = {
  version: "",
  provider: null, // "offline" | "gemini"
  user: null, // {id, username, ...} when logged in
  models: [],
  defaultModel: null,
  currentConvId: null,
  busy: false, // a generation request is on its way (thread.js: sending() says for which thread)
  signingIn: false, // the next "user" event comes from the login dialog, not a page load
  // Bumped whenever the thread is replaced, so late answers for a thread that
  // is no longer shown are not drawn into the new one.
  view: 0,
};

const bus = new EventTarget();

export function emit(name, detail) {
  bus.dispatchEvent(new CustomEvent(name, { detail }));
}

export function on(name, listener) {
  bus.addEventListener(name, (event) => listener(event.detail));
}
