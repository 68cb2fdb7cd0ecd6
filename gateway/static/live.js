"use strict";
// Each camera on the page: live video over WebRTC (the box relays the camera's H.264), the JPEG
// snapshots when WebRTC cannot connect, and the zone editor drawn on the camera's picture.
// Uses api(), generation and role from app.js.

const WEBRTC_CONNECT_MS = 6000;  // no frame by then: the JPEG view takes over
const WEBRTC_RETRY_MS = [5000, 10000, 20000, 60000];  // then WebRTC is tried again, less and less often
const KEEPALIVE_MS = 10000;
const live = new Map();  // camera id -> { pc, session }

function modeText(kind, detail) {
  if (kind === "relay") return t("live.relay");
  if (kind === "encode") return t("live.encode");
  if (kind === "jpeg") return t("live.jpeg", { why: detail || "" });
  return t("live.connecting");
}

function setMode(fig, kind, detail) {
  const p = fig.querySelector(".view-mode");
  p.dataset.mode = kind;
  p.textContent = modeText(kind, detail);
}

function buildCameraView(cam, gen) {
  const fig = document.createElement("figure");
  fig.className = "cam";
  fig.dataset.camera = cam.id;
  const stage = document.createElement("div");
  stage.className = "stage";
  const video = document.createElement("video");
  video.muted = true;
  video.autoplay = true;
  video.playsInline = true;
  video.hidden = true;
  const img = document.createElement("img");
  img.alt = cam.id;
  img.hidden = true;
  stage.append(video, img);
  const cap = document.createElement("figcaption");
  cap.textContent = cameraCaption(cam);
  const mode = document.createElement("p");
  mode.className = "view-mode hint";
  const tools = document.createElement("div");
  tools.className = "cam-tools";
  const edit = document.createElement("button");
  edit.className = "edit-zones";
  edit.textContent = t("zones.edit");
  edit.onclick = () => openZoneEditor(cam, fig);
  tools.append(edit);
  fig.append(stage, cap, mode, tools);
  setMode(fig, "connecting");
  startView(cam, fig, gen);
  return fig;
}

// A refused or failed live view is not final: a page opened while the camera was still
// connecting (the box has no video to relay yet), or one that lost its connection, shows the
// JPEG snapshots at once and tries WebRTC again after a while.
async function startView(cam, fig, gen, attempt = 0) {
  try {
    await startWebRTC(cam, fig, gen);
  } catch (err) {
    if (err.message !== "unauthorized") fallBack(cam, fig, gen, err.message, attempt);
  }
}

function fallBack(cam, fig, gen, why, attempt) {
  closeLive(cam.id);
  fig.querySelector("video").hidden = true;
  const running = fig.querySelector(".view-mode").dataset.mode === "jpeg";
  setMode(fig, "jpeg", why);
  if (!running) jpegLoop(cam, fig, gen);
  if (typeof RTCPeerConnection !== "function") return;
  const wait = WEBRTC_RETRY_MS[Math.min(attempt, WEBRTC_RETRY_MS.length - 1)];
  setTimeout(() => { if (gen === generation && fig.isConnected) startView(cam, fig, gen, attempt + 1); }, wait);
}

// Snapshots of the decoded stream, one a second: cheap on the box and the LAN. They stop when
// the live video takes over.
async function jpegLoop(cam, fig, gen) {
  const img = fig.querySelector("img");
  img.hidden = false;
  while (gen === generation && fig.querySelector(".view-mode").dataset.mode === "jpeg") {
    try {
      const r = await api(`/api/v1/cameras/${encodeURIComponent(cam.id)}/snapshot.jpg`);
      if (r.ok) {
        const url = URL.createObjectURL(await r.blob());
        img.onload = () => URL.revokeObjectURL(url);
        img.src = url;
      }
    } catch (err) { if (err.message === "unauthorized") return; }
    await new Promise((r) => setTimeout(r, 1000));
  }
}

// The offer goes out with the first candidate (or when gathering completes): the box needs no
// more than one, it learns the others from the browser's checks, and each wait here is a wait
// for the picture.
function gathered(pc, ms) {
  if (pc.iceGatheringState === "complete") return Promise.resolve();
  return new Promise((resolve) => {
    pc.addEventListener("icegatheringstatechange", () => { if (pc.iceGatheringState === "complete") resolve(); });
    pc.addEventListener("icecandidate", (ev) => { if (ev.candidate) resolve(); });
    setTimeout(resolve, ms);
  });
}

async function startWebRTC(cam, fig, gen) {
  if (typeof RTCPeerConnection !== "function") throw new Error(t("live.no_webrtc"));
  // Host candidates only: no STUN or TURN server, the box is on this LAN.
  const pc = new RTCPeerConnection({ iceServers: [] });
  const entry = { pc, session: null, timer: null };
  live.set(cam.id, entry);
  pc.addTransceiver("video", { direction: "recvonly" });
  const video = fig.querySelector("video");
  pc.ontrack = (ev) => { video.srcObject = ev.streams[0] || new MediaStream([ev.track]); };
  const marks = { start: performance.now() };
  window.liveTimings = marks;  // when each step happened (ms since the page opened): for tests and curious technicians
  await pc.setLocalDescription(await pc.createOffer());
  await gathered(pc, 1500);
  marks.offer = performance.now();
  const res = await api(`/api/v1/cameras/${encodeURIComponent(cam.id)}/live`, {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ type: "offer", sdp: pc.localDescription.sdp }),
  });
  if (!res.ok) {
    const problem = await res.json().catch(() => ({}));
    throw new Error(tCode("live.refused", problem.code, problem.detail || res.statusText));
  }
  const answer = await res.json();
  marks.answer = performance.now();
  pc.addEventListener("connectionstatechange", () => { if (pc.connectionState === "connected") marks.connected = performance.now(); });
  entry.session = answer.session;
  await pc.setRemoteDescription({ type: "answer", sdp: answer.sdp });
  // Connected means nothing until a frame is decoded: wait for the video to play.
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(t("live.no_frames", { s: WEBRTC_CONNECT_MS / 1000 }))), WEBRTC_CONNECT_MS);
    pc.addEventListener("connectionstatechange", () => {
      if (pc.connectionState === "failed") { clearTimeout(timer); reject(new Error(t("live.failed"))); }
    });
    video.addEventListener("playing", () => { clearTimeout(timer); resolve(); }, { once: true });
    video.play().catch(() => {});
  });
  marks.playing = performance.now();
  if (gen !== generation) { closeLive(cam.id); return; }
  video.hidden = false;
  fig.querySelector("img").hidden = true;
  setMode(fig, answer.mode);
  entry.timer = setInterval(async () => {
    if (gen !== generation || document.hidden) return;  // a hidden page lets the box close it
    const r = await api(`/api/v1/live/${answer.session}/keepalive`, { method: "POST" }).catch(() => null);
    if (r && r.status === 404) { closeLive(cam.id); startView(cam, fig, gen); }
  }, KEEPALIVE_MS);
  pc.addEventListener("connectionstatechange", () => {
    if (pc.connectionState === "failed" && live.get(cam.id) === entry) fallBack(cam, fig, gen, t("live.failed"), 0);
  });
}

function closeLive(id, leaving) {
  const entry = live.get(id);
  if (!entry) return;
  live.delete(id);
  clearInterval(entry.timer);
  if (entry.session) {
    // keepalive: the request outlives the page when it is being closed
    fetch(`/api/v1/live/${entry.session}`, { method: "DELETE", keepalive: !!leaving, headers: { Authorization: `Bearer ${token}` } }).catch(() => {});
  }
  entry.pc.close();
}

window.addEventListener("pagehide", () => { for (const id of [...live.keys()]) closeLive(id, true); });

// -- the zone editor ------------------------------------------------------------------------------

const SVG = "http://www.w3.org/2000/svg";
let editor = null;  // { cam, zones, selected, drawing, drag }

async function openZoneEditor(cam, fig) {
  const box = $("#zone-editor");
  const res = await api(`/api/v1/cameras/${encodeURIComponent(cam.id)}/zones`);
  const { zones } = await res.json();
  editor = { cam, zones: zones.map((z) => ({ ...z, points: z.points.map((p) => [...p]) })), selected: zones.length ? 0 : -1, drawing: null, drag: null, motion: null };
  box.hidden = false;
  $("#zone-camera").textContent = cam.name || cam.id;
  $("#zone-msg").textContent = "";
  $("#zone-msg").className = "hint";
  const canSave = role === "technician";
  $("#zone-save").disabled = !canSave;
  $("#zone-role").textContent = canSave ? "" : t("zones.technician_only");
  // The camera's current frame under the zones.
  const snap = await api(`/api/v1/cameras/${encodeURIComponent(cam.id)}/snapshot.jpg`);
  if (snap.ok) $("#zone-picture").src = URL.createObjectURL(await snap.blob());
  drawZones();
  box.scrollIntoView({ block: "nearest" });
  followMotion(editor);
}

// While the editor is open: the moving objects the camera sees now, green where the zones being
// drawn would report them (an object at least min_area_fraction of the frame whose centre or
// feet are in a restricted or motion zone), grey where they would not.
async function followMotion(ed) {
  while (editor === ed && !$("#zone-editor").hidden) {
    try {
      const r = await api(`/api/v1/cameras/${encodeURIComponent(ed.cam.id)}/motion`);
      if (r.ok && editor === ed) { ed.motion = await r.json(); if (!ed.drag) drawZones(); }
    } catch (err) { if (err.message === "unauthorized") return; }
    await new Promise((res) => setTimeout(res, 400));
  }
}

function inside(p, poly) {
  let hit = false;
  for (let i = 0, j = poly.length - 1; i < poly.length; j = i++) {
    const [xi, yi] = poly[i], [xj, yj] = poly[j];
    if ((yi > p[1]) !== (yj > p[1]) && p[0] < ((xj - xi) * (p[1] - yi)) / (yj - yi) + xi) hit = !hit;
  }
  return hit;
}

function wouldReport(b, zones, minArea) {
  if (b.area < minArea) return false;
  const named = zones.filter((z) => z.kind !== "ignore" && z.points.length >= 3);
  if (!named.length) return true;  // no zones: the whole frame reports motion
  return named.some((z) => inside([b.cx, b.cy], z.points) || inside([b.x + b.w / 2, b.y + b.h], z.points));
}

function svgPoint(ev) {
  const r = $("#zone-svg").getBoundingClientRect();
  const clamp = (v) => Math.min(1, Math.max(0, v));
  return [clamp((ev.clientX - r.left) / r.width), clamp((ev.clientY - r.top) / r.height)].map((v) => Math.round(v * 10000) / 10000);
}

// Keep the drag when the finger leaves the picture (a pointer the browser does not track, as a
// synthetic one, cannot be captured: the drag works without).
function capture(svg, ev) {
  try { svg.setPointerCapture(ev.pointerId); } catch (err) { /* not an active pointer */ }
}

function drawZones() {
  const svg = $("#zone-svg");
  svg.replaceChildren();
  editor.zones.forEach((z, i) => {
    const poly = document.createElementNS(SVG, "polygon");
    poly.setAttribute("points", z.points.map((p) => p.join(",")).join(" "));
    poly.setAttribute("class", `zone ${z.kind}${i === editor.selected ? " selected" : ""}`);
    poly.dataset.zone = z.name;
    poly.addEventListener("pointerdown", (ev) => {
      if (editor.drawing) return;
      ev.stopPropagation();
      editor.selected = i;
      editor.drag = { zone: i, vertex: -1, from: svgPoint(ev), orig: z.points.map((p) => [...p]) };
      capture(svg, ev);
      drawZones();
    });
    svg.append(poly);
    if (i === editor.selected) {
      z.points.forEach((p, v) => {
        const c = document.createElementNS(SVG, "circle");
        c.setAttribute("cx", p[0]);
        c.setAttribute("cy", p[1]);
        c.setAttribute("r", 0.012);
        c.setAttribute("class", "vertex");
        c.dataset.vertex = v;
        c.addEventListener("pointerdown", (ev) => {
          ev.stopPropagation();
          editor.drag = { zone: i, vertex: v };
          capture(svg, ev);
        });
        svg.append(c);
      });
    }
  });
  for (const b of (editor.motion && editor.motion.boxes) || []) {
    const r = document.createElementNS(SVG, "rect");
    for (const [k, v] of [["x", b.x], ["y", b.y], ["width", b.w], ["height", b.h]]) r.setAttribute(k, v);
    r.setAttribute("class", `box ${wouldReport(b, editor.zones, editor.motion.min_area_fraction) ? "hit" : "miss"}`);
    svg.append(r);
  }
  if (editor.drawing) {
    const line = document.createElementNS(SVG, "polyline");
    line.setAttribute("points", editor.drawing.map((p) => p.join(",")).join(" "));
    line.setAttribute("class", "drawing");
    svg.append(line);
  }
  const z = editor.zones[editor.selected];
  $("#zone-form").hidden = !z;
  if (z) {
    $("#zone-name").value = z.name;
    $("#zone-kind").value = z.kind;
    $("#zone-min").value = Math.round(z.min_fraction * 1000) / 10;
  }
  $("#zone-finish").hidden = !editor.drawing;
  $("#zone-new").hidden = !!editor.drawing;
  $("#zone-list").textContent = editor.zones.map((zz) => zz.name).join(", ");
}

function setupZoneEditor() {
  const svg = $("#zone-svg");
  svg.addEventListener("pointerdown", (ev) => {
    if (!editor || !editor.drawing) return;
    editor.drawing.push(svgPoint(ev));
    drawZones();
  });
  svg.addEventListener("pointermove", (ev) => {
    const d = editor && editor.drag;
    if (!d) return;
    const z = editor.zones[d.zone];
    const p = svgPoint(ev);
    if (d.vertex >= 0) {
      z.points[d.vertex] = p;
    } else {  // the whole zone, kept inside the picture
      const dx = p[0] - d.from[0], dy = p[1] - d.from[1];
      const xs = d.orig.map((q) => q[0]), ys = d.orig.map((q) => q[1]);
      const cx = Math.min(Math.max(dx, -Math.min(...xs)), 1 - Math.max(...xs));
      const cy = Math.min(Math.max(dy, -Math.min(...ys)), 1 - Math.max(...ys));
      z.points = d.orig.map((q) => [Math.round((q[0] + cx) * 10000) / 10000, Math.round((q[1] + cy) * 10000) / 10000]);
    }
    drawZones();
  });
  const stop = () => { if (editor) editor.drag = null; };
  svg.addEventListener("pointerup", stop);
  svg.addEventListener("pointercancel", stop);
  $("#zone-new").onclick = () => { editor.drawing = []; editor.selected = -1; drawZones(); };
  $("#zone-finish").onclick = () => {
    const pts = editor.drawing;
    editor.drawing = null;
    if (pts.length >= 3) {
      let n = editor.zones.length + 1;
      while (editor.zones.some((z) => z.name === `zone-${n}`)) n += 1;
      editor.zones.push({ name: `zone-${n}`, kind: "restricted", points: pts, min_fraction: 0.002 });
      editor.selected = editor.zones.length - 1;
    }
    drawZones();
  };
  $("#zone-delete").onclick = () => { editor.zones.splice(editor.selected, 1); editor.selected = -1; drawZones(); };
  $("#zone-name").oninput = (ev) => { editor.zones[editor.selected].name = ev.target.value; $("#zone-list").textContent = editor.zones.map((z) => z.name).join(", "); };
  $("#zone-kind").onchange = (ev) => { editor.zones[editor.selected].kind = ev.target.value; drawZones(); };
  $("#zone-min").oninput = (ev) => { editor.zones[editor.selected].min_fraction = Number(ev.target.value) / 100; };
  $("#zone-cancel").onclick = () => { $("#zone-editor").hidden = true; editor = null; };
  $("#zone-save").onclick = saveZones;
}

async function saveZones() {
  const msg = $("#zone-msg");
  msg.textContent = t("zones.saving");
  msg.className = "hint";
  const res = await api(`/api/v1/cameras/${encodeURIComponent(editor.cam.id)}/zones`, {
    method: "PUT",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ zones: editor.zones }),
  });
  const body = await res.json().catch(() => ({}));
  if (res.ok) {
    msg.textContent = t(body.zones.length === 1 ? "zones.saved_one" : "zones.saved", { n: body.zones.length, backup: body.backup });
    msg.className = "ok";
  } else {
    msg.textContent = body.detail || res.statusText;
    msg.className = "warn";
  }
}
