"use strict";
// Incidents at a glance: a thumbnail of each incident's evidence, filters by category, device and
// status, and a click that opens the evidence with the incident's history from the feed.
// Uses api(), act(), cell(), role and lang from app.js and i18n.js.

const thumbs = new Map();  // evidence URL -> Promise of an object URL (evidence never changes)
let incidentList = [];

function evidenceImage(i) {
  // A sensor window is JSON for machines; people get its plot.
  const url = i.evidence && (i.evidence.preview_url || (i.evidence.media_type.startsWith("image/") ? i.evidence.url : null));
  if (!url) return Promise.resolve(null);
  if (!thumbs.has(url)) {
    thumbs.set(url, api(url).then((r) => (r.ok ? r.blob() : null)).then((b) => (b ? URL.createObjectURL(b) : null)).catch(() => null));
  }
  return thumbs.get(url);
}

const when = (iso) => (iso ? new Date(iso).toLocaleString(lang) : "");

function fillFilter(sel, values) {
  const keep = sel.value;
  const all = sel.options[0];
  sel.replaceChildren(all);
  for (const v of [...new Set(values)].sort()) {
    const o = document.createElement("option");
    o.value = v;
    o.textContent = v;
    sel.append(o);
  }
  sel.value = [...sel.options].some((o) => o.value === keep) ? keep : "";
}

async function refreshIncidents() {
  const { incidents } = await (await api("/api/v1/incidents")).json();
  incidentList = incidents;
  fillFilter($("#f-category"), incidents.map((i) => i.category));
  fillFilter($("#f-device"), incidents.map((i) => i.place.device));
  fillFilter($("#f-status"), incidents.map((i) => i.status));
  renderIncidents();
}

function renderIncidents() {
  const f = { category: $("#f-category").value, device: $("#f-device").value, status: $("#f-status").value };
  const shown = incidentList.filter((i) => (!f.category || i.category === f.category)
    && (!f.device || i.place.device === f.device) && (!f.status || i.status === f.status));
  const tbody = $("#incidents tbody");
  tbody.replaceChildren();
  $("#no-incidents").hidden = shown.length > 0;
  for (const i of shown.slice().reverse()) {
    const row = tbody.insertRow();
    row.dataset.incident = i.incident_id;
    const th = cell(row, "", "thumb");
    if (i.evidence) {
      const img = document.createElement("img");
      img.alt = t("incidents.evidence");
      th.append(img);
      evidenceImage(i).then((src) => { if (src) img.src = src; else img.remove(); });
    }
    cell(row, i.severity, i.severity);
    cell(row, i.category);
    cell(row, [i.place.device, i.place.zone].filter(Boolean).join(" / "));
    cell(row, i.summary);
    cell(row, when(i.started_at));
    cell(row, i.status);
    const actions = cell(row, "");
    for (const verb of ["ack", "close"]) {
      if (role === "viewer") continue;  // a read-only token changes nothing
      if (verb === "ack" && i.status !== "open") continue;
      if (i.status === "closed") continue;
      const b = document.createElement("button");
      b.textContent = t(`incidents.${verb}`);
      b.onclick = () => act(i.incident_id, verb);
      actions.append(b);
    }
    row.addEventListener("click", (ev) => { if (!ev.target.closest("button")) openIncident(i); });
  }
}

// The incident's events, from the feed (peek: reading them delivers nothing).
async function incidentHistory(id) {
  const head = await api("/api/v1/events?after=0&limit=1&peek=1");
  const committed = Number(head.headers.get("X-Committed-Seq") || 0);
  const res = await api(`/api/v1/events?after=${Math.max(0, committed - 1000)}&limit=1000&peek=1`);
  return (await res.json()).filter((e) => e.data.incident_id === id);
}

async function openIncident(i) {
  const box = $("#incident-detail");
  box.dataset.incident = i.incident_id;
  $("#detail-title").textContent = `${i.category} · ${[i.place.device, i.place.zone].filter(Boolean).join(" / ")}`;
  $("#detail-summary").textContent = `${i.summary} (${i.severity}, ${i.status}, ${when(i.started_at)})`;
  const img = $("#detail-evidence");
  img.hidden = true;
  const src = await evidenceImage(i);
  if (src) { img.src = src; img.hidden = false; }
  const list = $("#detail-history");
  list.replaceChildren();
  for (const e of await incidentHistory(i.incident_id)) {
    const li = document.createElement("li");
    const fb = e.data.feedback || {};
    const by = (fb.closed && fb.closed.by) || (fb.acknowledged && fb.acknowledged.by);
    li.textContent = `${when(e.time)} ${e.type.split(".").pop()}: ${e.data.summary}${by ? ` (${by})` : ""}`;
    list.append(li);
  }
  if (!box.open) box.showModal();
}

function setupIncidents() {
  for (const id of ["#f-category", "#f-device", "#f-status"]) $(id).addEventListener("change", renderIncidents);
  $("#detail-close").onclick = () => $("#incident-detail").close();
}
