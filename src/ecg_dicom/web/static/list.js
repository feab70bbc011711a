/* The study list (GET /): filters, paging, live updates and the upload drop zone.
 *
 * Paging uses the API's cursor (`next`): Next pushes it, Previous pops back.
 * Live updates: every POLL_MS the page asks /api/jobs?updated_after=<newest updated_at
 * seen> with the same filters; a changed row is replaced where it is, and a new job
 * reloads the first page so it appears at the top (with the right total).
 * Uploads go one file per request, in order, each row showing its own progress,
 * result or error; a new drop clears the previous drop's results and images.
 */
"use strict";

(() => {
  const { el } = ECG;
  // Rows per page: 50, or the address's ?limit= (1 to 200, as the API allows).
  const PAGE = Math.min(200, Math.max(1, parseInt(new URLSearchParams(location.search).get("limit"), 10) || 50));
  const POLL_MS = 2000;
  const FILTERS = ["q", "state", "label", "origin", "date_from", "date_to"];

  const form = document.getElementById("filters");
  const tbody = document.querySelector("#jobs tbody");
  const listError = document.getElementById("list-error");
  let cursors = [null]; // cursor of each page shown so far; the last is this page's
  let rows = new Map(); // job_id -> {tr, json}
  let oldest = Infinity; // received_at of the last row on this page
  let since = 0; // newest updated_at seen
  let full = false; // this page holds PAGE rows
  let generation = 0; // each load's number: an answer to an older request is dropped

  function filterParams() {
    const params = new URLSearchParams();
    for (const name of FILTERS) {
      const value = form.elements[name].value.trim();
      if (value) params.set(name, value);
    }
    return params;
  }

  function readFiltersFromUrl() {
    const params = new URLSearchParams(location.search);
    for (const name of FILTERS) {
      if (params.has(name)) form.elements[name].value = params.get(name);
    }
  }

  function jobRow(job) {
    const link = `/job/${encodeURIComponent(job.job_id)}`;
    const from = job.origin === "upload"
      ? el("span", { title: "uploaded on this page" }, "upload", el("br"), el("small", { class: "muted" }, job.filename || ""))
      : el("span", { title: "calling AE title" }, job.calling_ae || "");
    const result = el("td", { class: "result" }, ECG.labelBadge(job.label, job.state));
    if (job.probability !== null && job.probability !== undefined) {
      result.append(" ", el("span", { class: "prob", title: "probability of this result" }, ECG.percent(job.probability)));
    }
    if (job.class_name && (job.class_display || job.class_name) !== job.label) {
      result.append(el("br"), ECG.className(job.class_name, job.class_display));
    }
    const patient = ECG.patientName(job.patient_name) || (job.origin === "upload" ? job.filename : "") || "(no name)";
    const tr = el("tr", { dataset: { job: job.job_id }, class: `row-${ECG.labelKey(job.label)}` },
      el("td", {}, ECG.localTime(job.received_at)),
      el("td", {}, el("a", { href: link }, patient), el("br"), el("small", { class: "muted" }, job.patient_id || "")),
      el("td", {}, ECG.studyDate(job.study_date)),
      el("td", {}, from),
      el("td", { title: job.reason || "" }, ECG.stateBadge(job.state)),
      result,
      el("td", { title: job.reason || "" }, ECG.deliveryText(job)));
    tr.addEventListener("click", (event) => {
      if (!event.target.closest("a")) location.assign(link);
    });
    return tr;
  }

  function showError(message) {
    listError.textContent = message || "";
    listError.hidden = !message;
  }

  async function load() {
    const params = filterParams();
    const cursor = cursors[cursors.length - 1];
    if (cursor) params.set("before", cursor);
    params.set("limit", String(PAGE));
    const mine = ++generation;
    let data;
    try {
      data = await ECG.getJSON(`/api/jobs?${params}`);
    } catch (err) {
      if (mine === generation) showError(`Could not load the list: ${err.message}`);
      return;
    }
    if (mine !== generation) return; // the filters or the page changed meanwhile
    showError("");
    rows = new Map();
    tbody.replaceChildren();
    oldest = Infinity;
    for (const job of data.jobs) {
      const tr = jobRow(job);
      rows.set(job.job_id, { tr, json: JSON.stringify(job) });
      tbody.append(tr);
      oldest = Math.min(oldest, job.received_at);
      since = Math.max(since, job.updated_at || 0);
    }
    full = data.jobs.length >= PAGE;
    document.getElementById("empty").hidden = data.jobs.length > 0;
    const first = (cursors.length - 1) * PAGE;
    document.getElementById("count").textContent = data.jobs.length
      ? `${first + 1}\u2013${first + data.jobs.length} of ${data.total}` : `0 of ${data.total}`;
    document.getElementById("prev").disabled = cursors.length <= 1;
    const next = document.getElementById("next");
    next.disabled = !data.next;
    next.dataset.cursor = data.next || "";
  }

  async function poll() {
    const params = filterParams();
    params.set("updated_after", String(since));
    params.set("limit", "200");
    const mine = generation;
    const data = await ECG.getJSON(`/api/jobs?${params}`);
    if (mine !== generation) return; // a load began meanwhile: it has the news
    let fresh = Boolean(data.next); // more changes than one answer holds: reload
    for (const job of data.jobs) {
      since = Math.max(since, job.updated_at || 0);
      const known = rows.get(job.job_id);
      if (known) {
        const json = JSON.stringify(job);
        if (json === known.json) continue;
        const tr = jobRow(job);
        tr.classList.add("changed");
        known.tr.replaceWith(tr);
        rows.set(job.job_id, { tr, json });
      } else if (!full || job.received_at >= oldest) {
        fresh = true; // a job that belongs on this page
      }
    }
    if (fresh && cursors.length === 1) await load();
  }

  async function pollForever() {
    const live = document.getElementById("live");
    for (;;) {
      await ECG.sleep(POLL_MS);
      try {
        await poll();
        live.textContent = "live";
        live.classList.remove("error");
      } catch (err) {
        live.textContent = `not updating: ${err.message}`;
        live.classList.add("error");
      }
    }
  }

  function filtersChanged() {
    const params = filterParams();
    if (PAGE !== 50) params.set("limit", String(PAGE));
    history.replaceState(null, "", params.toString() ? `/?${params}` : "/");
    cursors = [null];
    load();
  }

  /* ---- uploads ---- */

  function uploadRow(file) {
    const status = el("p", { class: "status waiting" }, "Waiting\u2026");
    const li = el("li", { class: "upload" }, el("div", { class: "upload-text" }, el("strong", {}, file.name), status));
    return { li, status };
  }

  function showUploadResult(li, job, detail) {
    const link = `/job/${encodeURIComponent(job.job_id)}`;
    const text = el("div", { class: "upload-text" },
      el("strong", {}, job.filename || ""),
      el("p", { class: "status done" }, ECG.labelBadge(job.label), " ",
        job.probability !== null && job.probability !== undefined
          ? el("span", { class: "prob" }, `probability ${ECG.percent(job.probability)}`) : "",
        job.class_name && (job.class_display || job.class_name) !== job.label
          ? [" \u2014 ", ECG.className(job.class_name, job.class_display)] : ""));
    if (job.reason && job.label !== "Normal" && job.label !== "Abnormal") text.append(el("p", {}, job.reason));
    const boxes = (detail && detail.result && detail.result.detections) || [];
    if (boxes.length) {
      text.append(el("p", { class: "muted" }, "Boxes found:"), el("ul", { class: "boxes" },
        boxes.map((b) => el("li", {}, ECG.className(b.class_name), ` ${ECG.percent(b.confidence)} confidence`))));
    }
    text.append(el("p", {}, el("a", { href: link }, "Open the result page \u2192")));
    const img = el("a", { href: link, class: "thumb" },
      el("img", { src: `/api/jobs/${encodeURIComponent(job.job_id)}/files/annotated.png`, alt: `annotated page of ${job.filename || "the upload"}` }));
    li.replaceChildren(img, text);
  }

  function showUploadError(li, name, message) {
    li.replaceChildren(el("div", { class: "upload-text" }, el("strong", {}, name),
      el("p", { class: "status error", role: "alert" }, message)));
  }

  async function uploadOne(file, row) {
    row.status.className = "status progress";
    row.status.textContent = "Classifying\u2026";
    const body = new FormData();
    body.append("files", file, file.name);
    let rsp;
    try {
      rsp = await ECG.post("/api/uploads", body);
    } catch (err) {
      showUploadError(row.li, file.name, `Could not send the file: ${err.message}`);
      return;
    }
    if (!rsp.ok) {
      showUploadError(row.li, file.name, await ECG.errorText(rsp));
      return;
    }
    const job = (await rsp.json()).jobs[0];
    if (job.state === "failed") {
      showUploadError(row.li, job.filename || file.name, job.reason || "could not be classified");
      return;
    }
    let detail = null;
    try {
      detail = await ECG.getJSON(`/api/jobs/${encodeURIComponent(job.job_id)}`);
    } catch (_) {
      /* the summary is enough to show the result */
    }
    showUploadResult(row.li, job, detail);
  }

  async function upload(files) {
    const list = document.getElementById("uploads");
    list.replaceChildren(); // a new upload clears every earlier result, image and error
    document.getElementById("clear-uploads").hidden = false;
    const items = [...files].map((file) => [file, uploadRow(file)]);
    for (const [, row] of items) list.append(row.li);
    for (const [file, row] of items) await uploadOne(file, row);
    if (cursors.length === 1) await load();
  }

  function setUpDrop() {
    const drop = document.getElementById("drop");
    const input = document.getElementById("file");
    document.getElementById("clear-uploads").addEventListener("click", (event) => {
      document.getElementById("uploads").replaceChildren();
      event.target.hidden = true;
    });
    input.addEventListener("change", () => {
      if (input.files.length) upload(input.files).finally(() => { input.value = ""; });
    });
    for (const name of ["dragenter", "dragover"]) {
      drop.addEventListener(name, (event) => { event.preventDefault(); drop.classList.add("over"); });
    }
    for (const name of ["dragleave", "drop"]) {
      drop.addEventListener(name, () => drop.classList.remove("over"));
    }
    drop.addEventListener("drop", (event) => {
      event.preventDefault();
      if (event.dataTransfer.files.length) upload(event.dataTransfer.files);
    });
    // A file dropped beside the zone must not replace the page with the file.
    for (const name of ["dragover", "drop"]) window.addEventListener(name, (event) => event.preventDefault());
    drop.addEventListener("keydown", (event) => {
      if (event.key === "Enter" || event.key === " ") { event.preventDefault(); input.click(); }
    });
  }

  function start() {
    readFiltersFromUrl();
    let typing = 0;
    // Typing waits for a pause; a choice in a list or a date applies at once.
    const changed = (event) => {
      clearTimeout(typing);
      typing = setTimeout(filtersChanged, event.target.name === "q" && event.type === "input" ? 300 : 0);
    };
    form.addEventListener("input", changed);
    form.addEventListener("change", changed);
    form.addEventListener("submit", (event) => { event.preventDefault(); filtersChanged(); });
    form.addEventListener("reset", () => setTimeout(filtersChanged, 0));
    document.getElementById("next").addEventListener("click", (event) => {
      cursors.push(event.target.dataset.cursor);
      load();
    });
    document.getElementById("prev").addEventListener("click", () => {
      if (cursors.length > 1) cursors.pop();
      load();
    });
    setUpDrop();
    load().then(pollForever);
  }

  start();
})();
