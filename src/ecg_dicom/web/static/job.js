/* One job's page (GET /job/{id}): everything /api/jobs/{id} says, for people.
 *
 * The result is explained in words: the probability of the result (the share of the
 * model's evidence for it) is not the top box's confidence (the detector's confidence
 * in one box). While the job is busy, or after Retry, the page polls every POLL_MS
 * and redraws what changed; the images are asked for again when the files change.
 */
"use strict";

(() => {
  const { el } = ECG;
  const POLL_MS = 2000;
  const jobId = decodeURIComponent(location.pathname.split("/").pop());
  const api = `/api/jobs/${encodeURIComponent(jobId)}`;
  const FILE_LABELS = {
    sr: "Structured report (DICOM SR)",
    sc: "Annotated page (DICOM Secondary Capture)",
    source: "Source ECG as received (DICOM)",
    "annotated.png": "Annotated page (PNG)",
    "page.png": "Source page as rendered (PNG)",
  };
  let shown = {}; // the parts of the last answer drawn, as JSON, to redraw only changes
  let following = false; // keep polling after a retry until the job settles

  function changed(key, value) {
    const json = JSON.stringify(value === undefined ? null : value);
    if (shown[key] === json) return false;
    shown[key] = json;
    return true;
  }

  function drawHeader(job) {
    const name = ECG.patientName(job.patient_name) || (job.origin === "upload" ? job.filename : "") || "(no patient name)";
    document.getElementById("patient").textContent = name;
    document.getElementById("patient-id").textContent = job.patient_id ? `ID ${job.patient_id}` : "";
    document.title = `${name} - ECG result - ecg-dicom`;
    const from = job.origin === "upload" ? `uploaded here (${job.filename || "file"})` : `from ${job.calling_ae || "?"}`;
    document.getElementById("facts").replaceChildren(
      job.study_date ? `Study date ${ECG.studyDate(job.study_date)} \u00b7 ` : "",
      job.study_description ? `${job.study_description} \u00b7 ` : "",
      job.modality_name ? `${job.modality_name} \u00b7 ` : "",
      `${from} \u00b7 received `, ECG.localTime(job.received_at), " \u00b7 ", ECG.stateBadge(job.state),
      el("span", { class: "muted" }, ` \u00b7 job ${job.job_id}`));
  }

  function drawResult(job) {
    const box = document.getElementById("result");
    const r = job.result || {};
    const label = job.label || r.label;
    const kind = job.class_name && (job.class_display || job.class_name) !== label
      ? [" \u2014 ", ECG.className(job.class_name, job.class_display)] : "";
    const parts = [el("h2", {}, "Result"), el("p", { class: "big" }, ECG.labelBadge(label, job.state), kind)];
    if (label === "Normal" || label === "Abnormal") {
      const score = r.abnormal_score;
      const p = job.probability ?? r.probability;
      parts.push(el("p", {}, el("strong", {}, `Probability of ${label.toLowerCase()}: ${ECG.percent(p)}`),
        label === "Normal" && score !== undefined ? ` (probability of abnormal ${ECG.percent(score)})` : ""));
      parts.push(el("p", { class: "explain" },
        "This is the share of the model's evidence that points to this result: its most confident " +
        "abnormal box weighed against its most confident normal box. The ECG is called Abnormal " +
        "when the probability of abnormal reaches the threshold (50 % unless the site changed it)."));
      if (r.class_name) {
        parts.push(el("p", { class: "explain" }, "Top box: ", ECG.className(r.class_name),
          `, confidence ${ECG.percent(r.confidence)}. That is how sure the detector is of that one box ` +
          "(where it lies and which class it is), not how sure it is of the result."));
      }
    } else if (label) {
      parts.push(el("p", {}, r.reason || job.reason || "The model found no ECG it could read on this page."));
    } else {
      parts.push(el("p", { class: "muted" }, ECG.BUSY.has(job.state) ? "Being classified\u2026"
        : job.state === "failed" ? "The model gave no result: see why below." : "The model gave no result."));
    }
    if (r.model_name) {
      parts.push(el("p", { class: "muted small" }, `Model ${r.model_name}, version ${String(r.model_version || "").slice(0, 12)}` +
        (r.runtime ? ` (${r.runtime})` : "")));
    }
    box.replaceChildren(...parts);
  }

  function drawFailure(job) {
    const failed = job.state === "failed" || job.state === "skipped";
    document.getElementById("failure").hidden = !failed;
    document.getElementById("failure-reason").textContent = failed ? job.reason || "no reason recorded" : "";
    document.getElementById("retry").hidden = !(failed && job.retryable);
  }

  function showImage(img, none, shown) {
    img.hidden = !shown;
    none.hidden = shown;
    img.closest("figure").classList.toggle("missing", !shown);
  }

  function drawImage(file, img, link, none, job) {
    const has = (job.files || []).includes(file);
    showImage(img, none, has);
    if (!has) return img.removeAttribute("src");
    img.onerror = () => showImage(img, none, false); // e.g. a source that cannot be drawn
    // A new query string when the job changed makes the browser fetch the image again.
    const url = `${api}/files/${file}?v=${encodeURIComponent(job.updated_at || "")}`;
    if (img.getAttribute("src") !== url) img.src = url;
    link.href = url;
  }

  function drawBoxes(job) {
    const boxes = ((job.result || {}).detections || []).slice().sort((a, b) => b.confidence - a.confidence);
    const list = document.getElementById("boxes");
    list.replaceChildren(...(boxes.length
      ? boxes.map((b) => el("li", {}, ECG.className(b.class_name), `: confidence ${ECG.percent(b.confidence)}`))
      : [el("li", { class: "muted" }, "none")]));
  }

  function drawDelivery(job) {
    const parts = [ECG.deliveryText(job) || "\u2014"];
    // While waiting, the reason says what went wrong and when the next try is.
    if (job.reason && ECG.BUSY.has(job.state)) parts.push(el("br"), el("span", { class: "muted" }, job.reason));
    if (job.delivery_attempts) parts.push(el("br"), el("span", { class: "muted" }, `${job.delivery_attempts} delivery attempt(s)`));
    document.getElementById("delivery").replaceChildren(...parts);
  }

  function drawStatements(job) {
    const list = document.getElementById("statements");
    const statements = job.statements || [];
    list.replaceChildren(...(statements.length
      ? statements.map((s) => el("li", {}, s))
      : [el("li", { class: "muted" }, "The cart recorded no interpretation of its own.")]));
  }

  /** The SR content as nested <details>, open (our SR is 4 levels deep): a click closes one. */
  function treeNode(node, depth) {
    const head = [el("span", { class: "name" }, node.name || "")];
    if (node.value !== undefined && node.value !== null && node.value !== "") {
      head.push(": ", el("span", { class: "value" }, String(node.value)));
    }
    const children = node.children || [];
    if (!children.length) return el("li", {}, head);
    return el("li", {}, el("details", { open: depth < 6 },
      el("summary", {}, head), el("ul", {}, children.map((c) => treeNode(c, depth + 1)))));
  }

  function drawTree(job) {
    const holder = document.getElementById("sr-tree");
    if (!job.sr_tree) {
      holder.replaceChildren(el("p", { class: "muted" }, "No structured report (yet)."));
      return;
    }
    holder.replaceChildren(el("ul", {}, treeNode(job.sr_tree, 0)));
  }

  function drawDownloads(job) {
    const files = (job.files || []).filter((f) => FILE_LABELS[f]);
    const list = document.getElementById("downloads");
    list.replaceChildren(...(files.length
      ? files.map((f) => el("li", {}, el("a", { href: `${api}/files/${f}`, download: "" },
        f === "source" && job.origin === "upload" ? `The uploaded file (${job.filename || "source"})` : FILE_LABELS[f])))
      : [el("li", { class: "muted" }, "nothing kept for this job")]));
  }

  function draw(job) {
    document.getElementById("job-body").hidden = false;
    drawHeader(job);
    drawFailure(job);
    drawDelivery(job);
    if (changed("result", [job.label, job.probability, job.result, job.reason, job.state])) drawResult(job);
    if (changed("files", [job.files, job.updated_at])) {
      drawImage("annotated.png", document.getElementById("annotated"), document.getElementById("annotated-link"),
        document.getElementById("no-annotated"), job);
      drawImage("page.png", document.getElementById("source-page"), document.getElementById("source-link"),
        document.getElementById("no-source"), job);
      drawDownloads(job);
    }
    if (changed("boxes", job.result && job.result.detections)) drawBoxes(job);
    if (changed("statements", job.statements)) drawStatements(job);
    if (changed("tree", job.sr_tree)) drawTree(job);
  }

  async function refresh() {
    const job = await ECG.getJSON(api);
    draw(job);
    return job;
  }

  async function follow() {
    let sawBusy = false;
    for (let polls = 1; ; polls++) {
      await ECG.sleep(POLL_MS);
      let job;
      try {
        job = await refresh();
      } catch (_) {
        continue; // keep the last view; the next poll tries again
      }
      if (ECG.BUSY.has(job.state)) {
        sawBusy = true;
        continue;
      }
      // After a retry the job may not have moved yet: give it a few polls.
      if (following && !sawBusy && job.state === "failed" && polls < 5) continue;
      if (following) {
        document.getElementById("retry-note").textContent = job.state === "done"
          ? `Retried: ${ECG.deliveryText(job) || "done"}.`
          : `Retried, but it ${job.state === "failed" ? "failed again" : `is ${job.state}`}: ${job.reason || ""}`;
      }
      following = false;
      return;
    }
  }

  async function retry() {
    const button = document.getElementById("retry");
    const note = document.getElementById("retry-note");
    button.disabled = true;
    note.textContent = "Asking for a retry\u2026";
    try {
      const rsp = await ECG.post(`${api}/retry`);
      if (!rsp.ok) {
        note.textContent = `Retry refused: ${await ECG.errorText(rsp)}`;
        return;
      }
      const answer = await rsp.json();
      if (!answer.queued) {
        note.textContent = `Not retried: ${answer.why || "the job cannot be retried"}`;
        return;
      }
      note.textContent = "Queued again; this page follows it.";
      following = true;
      await refresh();
      await follow();
    } finally {
      button.disabled = false;
    }
  }

  async function start() {
    document.getElementById("retry").addEventListener("click", retry);
    let job;
    try {
      job = await refresh();
    } catch (err) {
      const box = document.getElementById("job-error");
      box.textContent = `Could not show job ${jobId}: ${err.message}`;
      box.hidden = false;
      return;
    }
    if (ECG.BUSY.has(job.state)) follow();
  }

  start();
})();
