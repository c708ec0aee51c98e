// Live job progress for the web UI: polls GET /api/v1/jobs once a second while a job on
// the page is unfinished, and updates its progress bar, text and state. A job page
// reloads once when its job finishes, to show the result and the whole log.
"use strict";

(function () {
  const FINISHED = ["done", "failed", "cancelled"];

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    if (n < 1024) return n + " B";
    let v = n, u = 0;
    while (v >= 1024 && u < units.length - 1) { v /= 1024; u++; }
    return v.toFixed(1) + " " + units[u];
  }

  function progressText(job) {
    const p = job.progress;
    if (job.finished) return job.state + " (" + p.phase + ")";
    let t = p.phase + ": " + bytes(p.done_bytes) + " of " + bytes(p.total_bytes);
    if (p.bytes_per_sec > 0) t += ", " + bytes(p.bytes_per_sec) + "/s";
    if (p.eta_secs !== null && p.eta_secs !== undefined) t += ", " + p.eta_secs + " s left";
    return t;
  }

  function watched() {
    return Array.from(document.querySelectorAll(".progress[data-job]"));
  }

  function unfinished() {
    return watched().filter((el) => !FINISHED.includes(el.dataset.state));
  }

  function update(job) {
    document.querySelectorAll('.progress[data-job="' + job.id + '"]').forEach((el) => {
      const before = el.dataset.state;
      el.dataset.state = job.state;
      const bar = el.querySelector(".bar");
      bar.style.width = job.progress.percent + "%";
      bar.className = "bar state-" + job.state;
      el.querySelector(".pct").textContent = job.progress.percent + "%";
      if (before !== job.state && job.finished && document.body.dataset.jobPage === String(job.id)) {
        window.setTimeout(() => window.location.reload(), 300);
      }
    });
    document.querySelectorAll('[data-job-text="' + job.id + '"]').forEach((el) => {
      el.textContent = progressText(job);
    });
    document.querySelectorAll('[data-job-state="' + job.id + '"]').forEach((el) => {
      el.textContent = job.state;
      el.className = "state state-" + job.state;
    });
    if (job.finished) {
      document.querySelectorAll('form[data-cancel="' + job.id + '"]').forEach((f) => f.remove());
    }
  }

  async function poll() {
    if (unfinished().length === 0) return;
    try {
      const r = await fetch("/api/v1/jobs", { credentials: "same-origin", headers: { Accept: "application/json" } });
      if (r.status === 401) { window.location.href = "/login?next=" + encodeURIComponent(location.pathname); return; }
      if (r.ok) (await r.json()).forEach(update);
    } catch (e) {
      // The appliance may be restarting; try again on the next tick.
    }
    window.setTimeout(poll, 1000);
  }

  document.addEventListener("DOMContentLoaded", () => {
    const page = location.pathname.match(/^\/jobs\/(\d+)$/);
    if (page) document.body.dataset.jobPage = page[1];
    window.setTimeout(poll, 1000);
  });
})();
