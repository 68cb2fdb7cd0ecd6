"use strict";
// The page's words from messages.json: the browser's language (zh-CN or English), or the one
// chosen in the header's switch (kept in this browser). Incidents stay codes, never translated.

let messages = {};
let lang = localStorage.getItem("edge-lang") || ((navigator.language || "en").toLowerCase().startsWith("zh") ? "zh-CN" : "en");

function t(key, vars = {}) {
  const text = (messages[lang] && messages[lang][key]) || (messages.en && messages.en[key]) || key;
  return text.replace(/\{(\w+)\}/g, (_, name) => String(vars[name] ?? ""));
}

// A code from the box (a link's or a camera's state, a motion profile, why a live view was
// refused) in words where the catalog has them, else ``fallback``: the code itself, or the
// box's own sentence.
function tCode(prefix, code, fallback = code) {
  const key = `${prefix}.${code}`;
  return (messages[lang] && messages[lang][key]) || (messages.en && messages.en[key]) || fallback;
}

function translatePage() {
  document.documentElement.lang = lang;
  for (const el of document.querySelectorAll("[data-i18n]")) el.textContent = t(el.dataset.i18n);
}

async function loadMessages() {
  try {
    messages = await (await fetch("/static/messages.json")).json();
  } catch (err) { messages = {}; }
  if (!messages[lang]) lang = "en";
  const sw = document.querySelector("#lang");
  sw.replaceChildren();
  for (const code of Object.keys(messages)) {
    const o = document.createElement("option");
    o.value = code;
    o.textContent = messages[code]["lang.name"];
    sw.append(o);
  }
  sw.value = lang;
  sw.onchange = () => { lang = sw.value; localStorage.setItem("edge-lang", lang); location.reload(); };
  translatePage();
}
