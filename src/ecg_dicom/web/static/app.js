/* ecg-dicom web viewer: what every page shares.
 *
 * - post(): the one way the pages POST; it sends the X-CSRF-Token header read from the
 *   `csrf` cookie (double submit), so the service can refuse cross-site requests.
 * - getJSON(): GET an API answer; a 401 sends the browser to the sign-in page.
 * - names, labels, times and DOM helpers. Nothing is loaded from elsewhere (works offline).
 * Values from the API are always put into the page as text (el()), never as HTML.
 */
"use strict";

const ECG = (() => {
  const namesNode = document.getElementById("class-names");
  /** Detector classes as people read them ("MI-ECG" -> "Acute MI"), from the server. */
  const NAMES = namesNode ? JSON.parse(namesNode.textContent) : {};

  const STATES = {
    received: "Received",
    processing: "Classifying",
    delivering: "Sending",
    waiting: "Waiting for destination",
    done: "Done",
    failed: "Failed",
    skipped: "Skipped",
  };
  /** States a job leaves by itself: pages keep polling while a job is in one. */
  const BUSY = new Set(["received", "processing", "delivering", "waiting"]);

  function cookie(name) {
    for (const part of document.cookie.split(";")) {
      const [key, ...rest] = part.trim().split("=");
      if (key === name) return decodeURIComponent(rest.join("="));
    }
    return "";
  }

  function toLogin() {
    const here = location.pathname + location.search;
    location.assign("/login?next=" + encodeURIComponent(here));
  }

  /** POST with the CSRF header; `body` is FormData, an object (sent as JSON) or nothing. */
  async function post(url, body) {
    const headers = { "X-CSRF-Token": cookie("csrf"), Accept: "application/json" };
    const init = { method: "POST", headers, credentials: "same-origin" };
    if (body instanceof FormData) {
      init.body = body;
    } else if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    const rsp = await fetch(url, init);
    if (rsp.status === 401) toLogin();
    return rsp;
  }

  /** The error an API answer carries, in words (FastAPI's `detail`, or the status). */
  async function errorText(rsp) {
    try {
      const data = await rsp.json();
      if (typeof data.detail === "string") return data.detail;
      if (Array.isArray(data.detail)) {
        return data.detail.map((d) => (d.loc || []).slice(1).join(".") + ": " + d.msg).join("; ");
      }
    } catch (_) {
      /* not JSON: fall through */
    }
    return `${rsp.status} ${rsp.statusText}`.trim();
  }

  async function getJSON(url) {
    const rsp = await fetch(url, { credentials: "same-origin", headers: { Accept: "application/json" } });
    if (rsp.status === 401) {
      toLogin();
      throw new Error("signed out");
    }
    if (!rsp.ok) throw new Error(await errorText(rsp));
    return rsp.json();
  }

  /** el("a", {href: "/x", class: "y"}, "text", child...): an element with text children. */
  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key === "dataset") Object.assign(node.dataset, value);
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    for (const child of children.flat()) {
      if (child === undefined || child === null || child === false) continue;
      node.append(child instanceof Node ? child : String(child));
    }
    return node;
  }

  function displayName(cls) {
    return (cls && NAMES[cls]) || cls || "";
  }

  /** A detector class for people, with the data set's name as the tooltip. */
  function className(cls, display) {
    if (!cls) return el("span", { class: "muted" }, "no class");
    return el("span", { class: "class-name", title: `data set class: ${cls}` }, display || displayName(cls));
  }

  /** "Normal" / "Abnormal" / "Not interpretable" -> a CSS class. */
  function labelKey(label) {
    return (label || "none").toLowerCase().replace(/\s+/g, "-");
  }

  function percent(p) {
    if (p === null || p === undefined) return "";
    const v = p * 100;
    return (v > 0 && v < 1) || (v > 99 && v < 100) ? `${v.toFixed(1)} %` : `${Math.round(v)} %`;
  }

  /** The result label, coloured; without one, "no result yet" while the job is busy. */
  function labelBadge(label, state) {
    const none = state && !BUSY.has(state) ? "no result" : "no result yet";
    return el("span", { class: `label label-${labelKey(label)}` }, label || none);
  }

  /** Received time in the browser's local time; the tooltip says which zone. */
  function localTime(epoch) {
    if (!epoch) return el("span", { class: "muted" }, "");
    const date = new Date(epoch * 1000);
    const zone = Intl.DateTimeFormat().resolvedOptions().timeZone || "local time";
    return el("time", { datetime: date.toISOString(), title: `${date.toISOString()} (shown in ${zone})` },
      date.toLocaleString());
  }

  /** DICOM DA "20240131" -> "2024-01-31" (left alone when it is not a DA). */
  function studyDate(da) {
    const m = /^(\d{4})(\d{2})(\d{2})$/.exec(da || "");
    return m ? `${m[1]}-${m[2]}-${m[3]}` : da || "";
  }

  /** DICOM PN "DOE^JANE^^^" -> "DOE, JANE". */
  function patientName(pn) {
    if (!pn) return "";
    const [family, given, middle, prefix, suffix] = String(pn).split("=")[0].split("^");
    const rest = [prefix, given, middle, suffix].filter(Boolean).join(" ");
    return rest ? `${family}, ${rest}` : family;
  }

  function stateBadge(state) {
    return el("span", { class: `state state-${state}` }, STATES[state] || state || "");
  }

  /** Delivery in words: "sent to PACS", "waiting for PACS", "not sent" ... */
  function deliveryText(job) {
    const dest = job.destination || "";
    if (job.origin === "upload" && !job.delivery) return "kept here (uploads are not sent)";
    switch (job.delivery) {
      case "sent": return dest ? `sent to ${dest}` : "sent";
      case "waiting": return dest ? `waiting for ${dest}` : "waiting";
      case "failed": return dest ? `not delivered to ${dest}` : "not delivered";
      case "not sent": return "not sent (no destination)";
      default: return dest ? `to ${dest}` : "";
    }
  }

  function sleep(ms) {
    return new Promise((resolve) => setTimeout(resolve, ms));
  }

  async function signOut() {
    await post("/logout");
    location.assign("/login");
  }

  document.addEventListener("DOMContentLoaded", () => {
    const out = document.getElementById("sign-out");
    if (out) out.addEventListener("click", signOut);
  });

  return {
    NAMES, STATES, BUSY, cookie, post, getJSON, errorText, el, displayName, className, labelKey,
    labelBadge, percent, localTime, studyDate, patientName, stateBadge, deliveryText, sleep,
  };
})();
