"use strict";
// The technician's page: links, live incidents (with ack/close), the event feed, and a live view
// of each camera. Everything comes from the same token-protected API the platform uses.

const $ = (sel) => document.querySelector(sel);
let token = sessionStorage.getItem("edge-token");
const fromHash = new URLSearchParams(location.hash.slice(1)).get("token");
if (fromHash) {
  token = fromHash;
  sessionStorage.setItem("edge-token", token);
  history.replaceState(null, "", location.pathname);
}

// A token pasted into the address bar of an open page arrives as a hash change, not a load.
window.addEventListener("hashchange", () => {
  if (new URLSearchParams(location.hash.slice(1)).get("token")) location.reload();
});

async function api(path, options = {}) {
  const res = await fetch(path, { ...options, headers: { ...(options.headers || {}), Authorization: `Bearer ${token}` } });
  if (res.status === 401) { showLogin(); throw new Error("unauthorized"); }
  return res;
}

function showLogin() {
  $("#login").hidden = false;
  $("#main").hidden = true;
  $("#ready").textContent = t("ready.token_needed");
}

$("#login").addEventListener("submit", (ev) => {
  ev.preventDefault();
  token = $("#token").value.trim();
  sessionStorage.setItem("edge-token", token);
  start();
});

const age = (since) => {
  const s = Math.max(0, Date.now() / 1000 - since);
  return s < 120 ? t("age.s", { n: s.toFixed(0) }) : s < 7200 ? t("age.min", { n: (s / 60).toFixed(0) }) : t("age.h", { n: (s / 3600).toFixed(1) });
};

function cell(row, text, cls) {
  const td = row.insertCell();
  td.textContent = text ?? "";
  if (cls) td.className = cls;
  return td;
}

async function refreshLinks() {
  const ready = await api("/readyz");
  const body = await ready.json();
  $("#ready").textContent = t(body.ready ? "ready.ready" : "ready.not_ready");
  $("#ready").className = `pill ${body.ready ? "ready" : "down"}`;
  const { links, gb28181 } = await (await api("/api/v1/devices")).json();
  showGb28181(gb28181 || []);
  const tbody = $("#links tbody");
  tbody.replaceChildren();
  for (const l of links) {
    const row = tbody.insertRow();
    row.dataset.link = l.name;
    cell(row, l.name);
    const st = cell(row, "");
    const pill = document.createElement("span");
    pill.className = `pill ${l.state}`;
    pill.textContent = tCode("state", l.state);
    st.append(pill);
    cell(row, age(l.since));
    cell(row, String(l.restarts));
    cell(row, l.last_error || "");
  }
}

// The county video platform's channels: registered or not, keepalives missed, alarms
// acknowledged and still in the outbox ("+" while the count catches up), live sessions.
function showGb28181(channels) {
  $("#gb-section").hidden = !channels.length;
  const tbody = $("#gb tbody");
  tbody.replaceChildren();
  for (const c of channels) {
    const row = tbody.insertRow();
    cell(row, t("gb.channel_as", { id: c.id, device: c.device_id, platform: c.platform }));
    const pill = document.createElement("span");
    pill.className = `pill ${c.state || "starting"}`;
    pill.textContent = c.state || "";
    cell(row, "").append(pill);
    cell(row, c.registered ? t("gb.yes", { n: c.registrations }) : t("gb.no"), c.registered ? "" : "warn");
    cell(row, String(c.keepalive_misses), c.keepalive_misses ? "warn" : "");
    cell(row, `${c.alarms_sent} / ${c.alarms_pending}${c.alarms_pending_exact ? "" : "+"}`);
    cell(row, String(c.live_sessions));
  }
}

const size = (b) => b < 2 ** 20 ? `${(b / 1024).toFixed(0)} KiB` : `${(b / 2 ** 20).toFixed(1)} MiB`;

async function refreshOutbox() {
  const o = await (await api("/api/v1/outbox")).json();
  const span = o.covers_hours !== null && o.covers_hours < 48
    ? t("age.h", { n: o.covers_hours.toFixed(1) })
    : t("age.days", { n: (o.covers_hours / 24).toFixed(0) });
  const holds = o.covers_hours === null
    ? t("outbox.no_events")
    : t("outbox.holds", { rate: size(o.intake_bytes_per_hour), span });
  const owed = o.undelivered_events
    ? t(o.undelivered_events === 1 ? "outbox.owed_one" : "outbox.owed", {
      n: o.undelivered_events, size: size(o.undelivered_bytes), age: age(Date.now() / 1000 - o.oldest_undelivered_age_s),
    })
    : t("outbox.delivered");
  const dropped = o.dropped_total ? t("outbox.dropped", { n: o.dropped_total }) : "";
  $("#outbox").textContent = t("outbox.line", { budget: size(o.budget_bytes), owed, holds, dropped });
  $("#outbox").className = o.dropped_total || (o.covers_hours !== null && o.covers_hours < 24) ? "warn" : "hint";
}

async function act(id, verb) {
  const by = prompt(t(verb === "ack" ? "incidents.ack_by" : "incidents.close_by"));
  if (!by) return;
  const res = await api(`/api/v1/incidents/${id}/${verb}`, { method: "POST", headers: { "Content-Type": "application/json" }, body: JSON.stringify({ by }) });
  // A refused ack or close (the platform closed it meanwhile, the box forgot it) must not pass
  // for done: the technician would leave believing it was handled.
  if (!res.ok) {
    const problem = await res.json().catch(() => ({}));
    alert(t(verb === "ack" ? "incidents.ack_failed" : "incidents.close_failed", { detail: problem.detail || res.statusText }));
  }
  refreshIncidents();
}

// refreshIncidents() is in incidents.js: thumbnails, filters, the evidence and history panel.

async function followFeed(gen) {
  $("#feed").replaceChildren();
  let after = 0;
  // peek=1: showing the feed here must not mark anything delivered on a pull-only box.
  const head = await api("/api/v1/events?after=0&limit=1&peek=1");
  const committed = Number(head.headers.get("X-Committed-Seq") || 0);
  after = Math.max(0, committed - 50);
  while (gen === generation) {
    try {
      const res = await api(`/api/v1/events?after=${after}&limit=100&wait=25&peek=1`);
      const batch = await res.json();
      if (gen !== generation) return;  // a later login's loop shows these
      after = Number(res.headers.get("X-Next-After"));
      for (const e of batch) {
        const li = document.createElement("li");
        li.textContent = `#${Number(e.sequence)} ${e.time} ${e.type.split(".").pop()} ${e.data.category} ${e.data.place.device}: ${e.data.summary}`;
        $("#feed").prepend(li);
      }
      while ($("#feed").children.length > 100) $("#feed").lastChild.remove();
      if (batch.length) refreshIncidents();
    } catch (err) {
      if (err.message === "unauthorized") return;
      await new Promise((r) => setTimeout(r, 2000));
    }
  }
}

async function liveView(gen) {
  const res = await api("/api/v1/cameras");
  if (!res.ok) return;
  const { cameras } = await res.json();
  if (!cameras.length) return;
  $("#cameras-section").hidden = false;
  const box = $("#cameras");
  for (const id of [...live.keys()]) closeLive(id);
  box.replaceChildren();  // a second login must not add a second set of views
  // WebRTC where it connects, else JPEG snapshots (live.js); the page says which it shows.
  for (const cam of cameras) box.append(buildCameraView(cam, gen));
}

// A camera's state (streaming, offline, ...) changes while the page is open: keep the captions true.
async function refreshCameraStates() {
  const res = await api("/api/v1/cameras");
  if (!res.ok) return;
  for (const cam of (await res.json()).cameras) {
    const cap = document.querySelector(`[data-camera="${CSS.escape(cam.id)}"] figcaption`);
    if (cap) cap.textContent = cameraCaption(cam);
  }
}

// "Gate (streaming, night IR)": the stream's state and the motion profile in force, so that a
// technician at dusk sees the camera switch to its IR mode and the night settings with it, and
// on a windy day that the gateway aligns the shaking picture. A camera set to gate on its own
// motion that has no events to gate with says so: it analyses every frame instead.
function cameraCaption(cam) {
  const parts = [tCode("state", cam.state)];
  if (cam.vision_profile) parts.push(tCode("camera.profile", cam.vision_profile) + (cam.ir_mode ? ` ${t("camera.ir")}` : ""));
  if (cam.stabilising) parts.push(t("camera.stabilising"));  // aligning frames against camera shake
  if (cam.panning) parts.push(t("camera.panning"));  // the motion model follows a camera that pans
  if (cam.gating_fallback) parts.push(t("camera.cannot_gate"));
  return t("camera.caption", { name: cam.name || cam.id, details: parts.join(t("camera.sep")) });
}

let timers = [];
let role = "";  // the token's role: technician, platform or viewer (GET /api/v1/me)
// Each login starts one generation of loops; the loops of an earlier one stop at their next turn.
let generation = 0;

async function start() {
  if (!token) { showLogin(); return; }
  const gen = ++generation;
  // The picture first, asked for beside the page's own questions, not after them: it is what a
  // technician on a ladder waits for. A wrong token shows the login (api()) and ends them all.
  liveView(gen).catch(() => {});
  try {
    const [info, me] = await Promise.all([api("/api/v1/site"), api("/api/v1/me")].map((r) => r.then((res) => res.json())));
    $("#box").textContent = `${info.box_id} · ${info.township} / ${info.village}`;
    document.title = `${info.box_id} · ${t("page.title")}`;
    role = me.role;
  } catch (err) { return; }
  $("#role").textContent = t(`role.${role}`);
  $("#login").hidden = true;
  $("#main").hidden = false;
  await refreshLinks();
  await refreshOutbox();
  await refreshIncidents();
  // Logging in again (a new token after a 401) restarts the polling instead of doubling it.
  for (const t of timers) clearInterval(t);
  timers = [setInterval(refreshLinks, 3000), setInterval(refreshOutbox, 10000), setInterval(refreshCameraStates, 5000)];
  followFeed(gen);
}

setupZoneEditor();
setupIncidents();
loadMessages().then(start);
