// The "Try it" view: search the catalog, pick seeds or a listener, get recommendations with
// their scores and reasons, and send play / skip / like through POST /v1/feedback.
import {
  $, api, apiKey, el, fmt, keyFromFragment, setApiKey, showMessage, sleep, status,
} from "./api.js";
import { loadOps } from "./ops.js";

const K = 10;
const DIVERSITY = 0.3;
const SESSION = "musicrec.sessionListener";
const RECORDED = "musicrec.recordedSeeds";
const VISIBLE_WITHIN_MS = 15000; // feedback reaches the recommender within moments

const state = { seeds: [], listener: null, tracks: [], busy: false };

function sessionListener() {
  let id = sessionStorage.getItem(SESSION);
  if (!id) {
    const bytes = crypto.getRandomValues(new Uint8Array(4));
    id = "web-" + Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
    sessionStorage.setItem(SESSION, id);
    sessionStorage.removeItem(RECORDED);
  }
  $("session-id").textContent = id;
  return id;
}

// --- the key -------------------------------------------------------------------------------

function showKey() {
  const key = apiKey();
  $("key-state").textContent = key
    ? `Using key ${key.slice(0, 8)}… (kept for this tab only).`
    : "No key yet: searching, feedback and the operations view need one.";
  $("api-key").value = "";
}

$("key-form").addEventListener("submit", (event) => {
  event.preventDefault();
  setApiKey($("api-key").value.trim());
  showKey();
  status("API key set.");
  loadListeners();
});
$("forget-key").addEventListener("click", () => {
  setApiKey("");
  showKey();
  status("API key forgotten.");
});

// --- search and seeds ----------------------------------------------------------------------

$("search-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const q = $("search-q").value.trim();
  const list = $("search-results");
  showMessage("search-message", "");
  try {
    const { data } = await api("v1/tracks/search", { query: { q, limit: 8 } });
    list.replaceChildren(...data.map(searchResult));
    if (!data.length) showMessage("search-message", `No track matches “${q}”.`, "info");
    status(`${data.length} track(s) found for “${q}”.`);
  } catch (error) {
    list.replaceChildren();
    showMessage("search-message", `Search failed — ${error.message}`);
  }
});

function searchResult(track) {
  const chosen = state.seeds.some((s) => s.track_uri === track.track_uri);
  return el("li", { class: "track" },
    el("div", { class: "what" },
      el("span", { class: "title" }, track.track_name),
      el("span", { class: "artist" }, track.artist_name),
      track.genre ? el("span", { class: "tag" }, track.genre) : null),
    el("button", {
      type: "button", class: "add", "aria-disabled": chosen ? "true" : null,
      "aria-label": `Add ${track.track_name} by ${track.artist_name} as a seed`,
      onclick: (event) => {
        const button = event.currentTarget;
        if (button.getAttribute("aria-disabled") === "true") return;
        addSeed(track);
        button.setAttribute("aria-disabled", "true"); // stays focusable for the keyboard
        button.textContent = "Added";
      },
    }, chosen ? "Added" : "Add seed"));
}

function addSeed(track) {
  if (!state.seeds.some((s) => s.track_uri === track.track_uri)) state.seeds.push(track);
  renderSeeds();
  status(`Seed added: ${track.track_name} — ${track.artist_name}.`);
}

function renderSeeds() {
  $("seeds").replaceChildren(...state.seeds.map((track, i) => el("li", { class: "chip" },
    `${track.track_name} — ${track.artist_name}`,
    el("button", {
      type: "button", class: "quiet", "aria-label": `Remove seed ${track.track_name}`,
      onclick: () => { state.seeds.splice(i, 1); renderSeeds(); status("Seed removed."); },
    }, "×"))));
  $("seeds-empty").hidden = state.seeds.length > 0;
  $("recommend-seeds").disabled = state.seeds.length === 0;
}

$("recommend-seeds").addEventListener("click", async () => {
  const tracks = state.seeds.map(({ track_name, artist_name, track_uri }) =>
    ({ track_name, artist_name, track_uri }));
  await run("Recommending from your seeds…", async () => {
    const { data, headers } = await api("predict", {
      method: "POST", body: { tracks }, query: { k: K, diversity: DIVERSITY }, needsKey: false,
    });
    const listener = sessionListener();
    const meta = `for your ${tracks.length} seed(s) (POST /predict) · source ${
      headers.get("X-Recommendation-Source")} · model ${headers.get("X-Model-Version")}`;
    render(data.recommended_tracks, meta, listener);
    $("recs-title").focus();
    await recordSeeds(listener);
  });
});

/** The seeds as the session listener's clicks (once each), so feedback applies on top. */
async function recordSeeds(listener) {
  if (!apiKey()) {
    showMessage("recs-message", "Feedback needs an API key: enter one above.", "info");
    return;
  }
  const done = new Set(JSON.parse(sessionStorage.getItem(RECORDED) || "[]"));
  const fresh = state.seeds.filter((s) => !done.has(s.track_uri));
  if (!fresh.length) return;
  const events = fresh.map((s) => feedbackEvent(listener, s.track_uri, "click"));
  await api("v1/feedback", { method: "POST", body: { events } });
  fresh.forEach((s) => done.add(s.track_uri));
  sessionStorage.setItem(RECORDED, JSON.stringify([...done]));
  status(`Seeds recorded as clicks of session listener ${listener}.`);
}

$("new-session").addEventListener("click", () => {
  sessionStorage.removeItem(SESSION);
  const id = sessionListener();
  status(`New session listener ${id}.`);
});

// --- a known listener ----------------------------------------------------------------------

$("user-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  await userRecommendations($("user-id").value.trim(), true);
});

async function userRecommendations(listener, focus) {
  await run(`Recommending for ${listener}…`, async () => {
    render(...(await fetchUser(listener)), listener);
    if (focus) $("recs-title").focus();
  });
}

async function fetchUser(listener) {
  const path = `v1/users/${encodeURIComponent(listener)}/recommendations`;
  const { data } = await api(path, { query: { k: K, diversity: DIVERSITY } });
  const fallback = data.fallback ? ` · fallback: ${data.fallback_reason}` : "";
  const meta = `for listener ${listener} · source ${data.source} · model ${
    data.model_version || "none"}${fallback}`;
  return [data.tracks, meta];
}

async function loadListeners() {
  if (!apiKey()) return;
  try {
    const { data } = await api("v1/listeners", { query: { limit: 6 } });
    $("listener-list").replaceChildren(...data.map((l) => el("option", { value: l.user_id })));
    $("listeners").replaceChildren(...data.map((l) => el("li", {},
      el("button", {
        type: "button", class: "chip-button",
        onclick: () => { $("user-id").value = l.user_id; userRecommendations(l.user_id, true); },
      }, l.user_id))));
    showMessage("listeners-message", "");
  } catch (error) {
    showMessage("listeners-message", `Recent listeners not loaded — ${error.message}`);
  }
}

document.querySelectorAll("input[name=mode]").forEach((radio) =>
  radio.addEventListener("change", () => {
    const mode = document.querySelector("input[name=mode]:checked").value;
    $("seed-mode").hidden = mode !== "seeds";
    $("user-mode").hidden = mode !== "user";
  }));

// --- the list and feedback -----------------------------------------------------------------

function render(tracks, meta, listener) {
  const before = new Set(state.tracks.map((t) => t.track_uri));
  const sameListener = state.listener === listener;
  state.tracks = tracks;
  state.listener = listener;
  $("recs-meta").textContent = meta;
  $("recs-empty").hidden = tracks.length > 0;
  $("recs").replaceChildren(...tracks.map((track, i) => el("li", {
    class: "track rec", "data-track-uri": track.track_uri },
    el("div", { class: "what" },
      el("span", { class: "title" }, track.track_name),
      el("span", { class: "artist" }, track.artist_name),
      track.genre ? el("span", { class: "tag" }, track.genre) : null,
      sameListener && before.size && !before.has(track.track_uri)
        ? el("span", { class: "tag new" }, "new") : null,
      el("span", { class: "why" }, `${track.reason} · score ${fmt(track.score)}`)),
    el("div", { class: "actions", role: "group", "aria-label": `Feedback on ${track.track_name}` },
      ...["play", "skip", "like"].map((kind) => el("button", {
        type: "button", class: `fb ${kind}`, "data-index": i,
        "aria-label": `${kind[0].toUpperCase() + kind.slice(1)} ${track.track_name} by ${
          track.artist_name}`,
        onclick: () => feedback(track, kind, i),
      }, { play: "▶ Play", skip: "» Skip", like: "♥ Like" }[kind]))))));
}

function feedbackEvent(listener, trackUri, kind) {
  return {
    user_id: listener, track_id: trackUri, event_type: kind,
    context: { device: "web", session_id: `web-page-${listener}` },
  };
}

async function feedback(track, kind, index) {
  const listener = state.listener;
  await run(`Sending ${kind} of ${track.track_name}…`, async () => {
    await api("v1/feedback", { method: "POST", body: feedbackEvent(listener, track.track_uri, kind) });
    status(`${kind} of ${track.track_name} accepted (202): waiting for it to reach the recommender…`);
    // Played, liked (both join the recent tracks) and skipped tracks are not offered again.
    const deadline = Date.now() + VISIBLE_WITHIN_MS;
    let tracks, meta;
    do {
      await sleep(300);
      [tracks, meta] = await fetchUser(listener);
    } while (tracks.some((t) => t.track_uri === track.track_uri) && Date.now() < deadline);
    const visible = !tracks.some((t) => t.track_uri === track.track_uri);
    render(tracks, meta, listener);
    const focusable = $("recs").querySelectorAll("button.fb.play");
    if (focusable.length) focusable[Math.min(index, focusable.length - 1)].focus();
    let note = `Updated from your ${kind} of ${track.track_name}: it is no longer offered.`;
    if (!visible) note = `${kind} accepted, but not visible in the recommendations yet ` +
      "(is the feedback consumer running?).";
    status(note);
    showMessage("recs-message", note, visible ? "info" : "error");
  });
}

/** Run one action at a time; its error becomes a message in the recommendations panel. */
async function run(label, action) {
  if (state.busy) return;
  state.busy = true;
  document.body.setAttribute("aria-busy", "true");
  status(label);
  showMessage("recs-message", "");
  try {
    await action();
  } catch (error) {
    showMessage("recs-message", error.message);
    status(`Failed: ${error.message}`);
  } finally {
    state.busy = false;
    document.body.removeAttribute("aria-busy");
  }
}

// --- tabs ----------------------------------------------------------------------------------

const tabs = [$("tab-try"), $("tab-ops")];
function select(tab) {
  for (const t of tabs) {
    const on = t === tab;
    t.setAttribute("aria-selected", String(on));
    t.tabIndex = on ? 0 : -1;
    $(t.getAttribute("aria-controls")).hidden = !on;
  }
  if (tab.id === "tab-ops") loadOps();
}
tabs.forEach((tab, i) => {
  tab.addEventListener("click", () => select(tab));
  tab.addEventListener("keydown", (event) => {
    const step = { ArrowRight: 1, ArrowLeft: -1 }[event.key];
    if (!step) return;
    const next = tabs[(i + step + tabs.length) % tabs.length];
    next.focus();
    select(next);
  });
});
$("ops-refresh").addEventListener("click", loadOps);

keyFromFragment();
showKey();
sessionListener();
renderSeeds();
loadListeners();
