// lmrec web UI: plain DOM, no framework, nothing fetched but this service's own API.
"use strict";

const state = { mode: "session", user: null, session: [] };  // session: [{item_id, title}], oldest first
const $ = (id) => document.getElementById(id);

function say(text) {
  const box = $("message");
  box.textContent = text || "";
  box.hidden = !text;
}

async function api(method, path, body) {
  const headers = { "Accept": "application/json" };
  if (body !== undefined) headers["Content-Type"] = "application/json";
  const key = $("api-key").value.trim();
  if (key) headers["X-API-Key"] = key;
  let response;
  try {
    response = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  } catch (err) {
    throw new Error("The service cannot be reached (" + err.message + "). Is `lmrec serve` still running?");
  }
  let data = null;
  try { data = await response.json(); } catch (err) { data = null; }
  if (!response.ok) {
    let detail = data && data.detail;
    if (Array.isArray(detail)) detail = detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
    if (response.status >= 500) detail = "The service failed on this request (" + response.status + "). " + (detail || "");
    throw Object.assign(new Error(detail || ("HTTP " + response.status)), { status: response.status });
  }
  return data;
}

function el(tag, attrs, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (k === "onclick") node.addEventListener("click", v);
    else if (k === "class") node.className = v;
    else node.setAttribute(k, v);
  }
  for (const c of children) node.append(c instanceof Node ? c : document.createTextNode(String(c)));
  return node;
}

function contributionsTable(item) {
  const rows = (item.contributions || []).map((c) => el("tr", {},
    el("td", {}, c.title || String(c.item_id)),
    el("td", {}, c.weight.toFixed(3)),
    el("td", {}, c.co_occurrence == null ? "" : String(c.co_occurrence)),
    el("td", {}, c.attention == null ? "" : c.attention.toFixed(3)),
    el("td", {}, c.content_similarity == null ? "" : c.content_similarity.toFixed(2))));
  if (!rows.length) return el("p", {}, "No history event drives this item: it is recommended for everyone.");
  return el("div", { class: "scroll" }, el("table", {},
    el("caption", {}, "History events behind " + item.title + ", largest first"),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "event"), el("th", { scope: "col" }, "score drop"),
      el("th", { scope: "col" }, "users with both"), el("th", { scope: "col" }, "attention"),
      el("th", { scope: "col" }, "content similarity"))),
    el("tbody", {}, ...rows)));
}

function actionButton(item) {
  if (state.mode === "user") {
    return el("button", { type: "button", class: "secondary", "aria-label": "Record that user " + state.user +
      " chose " + item.title, onclick: () => postEvent(item) }, "Record a click");
  }
  return el("button", { type: "button", class: "secondary", "aria-label": "Add " + item.title + " to the session",
    onclick: () => addToSession(item) }, "Add to session");
}

function showRecommendations(items, source) {
  const list = $("recs");
  list.replaceChildren();
  $("recs-source").textContent = source;
  if (!items.length) {
    list.append(el("li", {}, "Nothing left to recommend."));
    return;
  }
  for (const item of items) {
    const why = el("details", { class: "why" }, el("summary", {}, "Why?"), contributionsTable(item));
    list.append(el("li", { "data-item": String(item.item_id) },
      el("div", { class: "item" }, el("span", { class: "title" }, item.title || String(item.item_id)),
        el("span", { class: "meta" }, "score " + item.score.toFixed(3)), actionButton(item)),
      el("p", { class: "reason" }, item.reason || ""), why));
  }
}

function showSession() {
  const list = $("session");
  list.replaceChildren();
  if (state.mode !== "session") return;
  $("who").textContent = state.session.length
    ? "Anonymous session with " + state.session.length + " item(s):"
    : "Anonymous session: add items from the search or the recommendations.";
  state.session.forEach((item, j) => list.append(el("li", {}, item.title + " ",
    el("button", { type: "button", class: "secondary", "aria-label": "Remove " + item.title + " from the session",
      onclick: () => { state.session.splice(j, 1); refresh(); } }, "Remove"))));
}

async function refresh() {
  say("");
  showSession();
  try {
    if (state.mode === "user") {
      const [user, recs] = await Promise.all([
        api("GET", "/users/" + encodeURIComponent(state.user) + "?k=5"),
        api("GET", "/recommend/" + encodeURIComponent(state.user) + "?k=10&explain=true")]);
      $("who").textContent = "User " + user.user_id + ", " + user.events + " events; latest: " +
        (user.recent.map((r) => r.title).join("; ") || "none");
      const map = el("img", { src: "/users/" + encodeURIComponent(state.user) + "/map.png", class: "map",
        alt: "User " + state.user + "'s history and recommendations on the item map, with their interest groups" });
      map.addEventListener("error", () => map.remove());  // models without item vectors have no map
      $("who").append(el("details", {}, el("summary", {}, "On the item map"), map));
      showRecommendations(recs.items, recs.source === "model" ? "From the model, after this user's whole history."
        : "This user has no events yet: popular items.");
    } else if (!state.session.length) {
      const slate = await api("GET", "/onboarding?k=10");
      showRecommendations(slate.map((i) => Object.assign(i, { reason: "A popular item from one of the catalogue's " +
        "main groups: your first picks tell the model the most." })), "A first slate for someone new.");
    } else {
      const recs = await api("POST", "/recommend", { history: state.session.map((i) => i.item_id), k: 10,
        explain: true });
      showRecommendations(recs.items, "From the model, after the " + state.session.length + " item(s) of this session.");
    }
  } catch (err) {
    if (err.status === 404 && state.mode === "user") {
      say("Unknown user " + JSON.stringify(state.user) + ": no such user id in this run or its events.");
      $("recs").replaceChildren();
      $("recs-source").textContent = "";
      $("who").textContent = "";
    } else {
      say(err.message);
    }
  }
}

function addToSession(item) {
  if (state.mode !== "session") { state.mode = "session"; state.session = []; }
  if (!state.session.some((i) => String(i.item_id) === String(item.item_id))) {
    state.session.push({ item_id: item.item_id, title: item.title || String(item.item_id) });
  }
  refresh();
}

async function postEvent(item) {
  try {
    await api("POST", "/events", { events: [{ user_id: state.user, item_id: item.item_id }] });
    await refresh();
    $("who").textContent += " (recorded: " + item.title + ")";
  } catch (err) {
    say(err.status === 401 ? "Posting events needs the service's API key: enter it under 'API key'." : err.message);
  }
}

async function search(event) {
  event.preventDefault();
  const q = $("query").value.trim();
  const list = $("results");
  list.replaceChildren();
  if (!q) { say("Type a word of a title to search for."); $("query").focus(); return; }
  say("");
  try {
    const hits = await api("GET", "/search?k=15&q=" + encodeURIComponent(q));
    if (!hits.length) list.append(el("li", {}, "No title contains " + JSON.stringify(q) + "."));
    for (const hit of hits) {
      list.append(el("li", { class: "item" }, el("span", { class: "title" }, hit.title || String(hit.item_id)),
        el("span", { class: "meta" }, Math.round(hit.score) + " training events"),
        el("button", { type: "button", class: "secondary", "aria-label": "Add " + hit.title + " to the session",
          onclick: () => addToSession(hit) }, "Add to session")));
    }
  } catch (err) { say(err.message); }
}

document.addEventListener("DOMContentLoaded", async () => {
  $("search-form").addEventListener("submit", search);
  $("user-form").addEventListener("submit", (event) => {
    event.preventDefault();
    const user = $("user-id").value.trim();
    if (!user) { say("Type a user id, or start an anonymous session."); $("user-id").focus(); return; }
    state.mode = "user"; state.user = user;
    refresh();
  });
  $("new-session").addEventListener("click", () => { state.mode = "session"; state.session = []; refresh(); });
  try {
    const h = await api("GET", "/health");
    $("run-info").textContent = h.model + " model, " + h.items.toLocaleString() + " items, " +
      h.users.toLocaleString() + " users";
  } catch (err) { $("run-info").textContent = ""; say(err.message); }
  refresh();
});
