// Choices that survive a reload, in localStorage under "nb.<name>". Storage
// may be unavailable (private windows, quotas); the page then just forgets.

const PREFIX = "nb.";

function read(name) {
  try {
    const raw = localStorage.getItem(PREFIX + name);
    return raw === null ? null : JSON.parse(raw);
  } catch {
    return null;
  }
}

function write(name, value) {
  try {
    if (value === null || value === undefined) localStorage.removeItem(PREFIX + name);
    else localStorage.setItem(PREFIX + name, JSON.stringify(value));
  } catch {
    /* storage unavailable: keep going without persistence */
  }
}

export const prefs = { get: read, set: write };
