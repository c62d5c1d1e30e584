
"use strict";
for (const form of document.querySelectorAll("form[data-confirm]")) {
  form.addEventListener("submit", (event) => {
    if (!window.confirm(form.dataset.confirm)) event.preventDefault();
  });
}
const log = document.getElementById("log");
if (log && log.dataset.live === "true") {
  let last = Number(log.dataset.after) || 0;
  const badge = (el, status) => { el.textContent = status; el.className = "badge " + status; };
  const source = new EventSource("/api/deploys/" + encodeURIComponent(log.dataset.id) + "/events?after=" + last);
  source.addEventListener("log", (event) => {
    const n = Number(event.lastEventId);
    if (n && n <= last) return;
    last = n || last + 1;
    const atBottom = log.scrollTop + log.clientHeight >= log.scrollHeight - 8;
    log.append(event.data + "\n");
    if (atBottom) log.scrollTop = log.scrollHeight;
  });
  // Started, finished, release, message: not in the events, so re-read when something moved.
  const refresh = () => fetch("/api/deploys/" + encodeURIComponent(log.dataset.id))
    .then((response) => response.ok ? response.json() : null)
    .then((deploy) => {
      if (!deploy) return;
      const when = (t) => t ? t.slice(0, 19).replace("T", " ") + " UTC" : "—";
      const values = { commit: deploy.commit || "—", release: deploy.release || "—",
        message: deploy.message || "—", author: deploy.author || "—",
        started_at: when(deploy.started_at), finished_at: when(deploy.finished_at) };
      for (const dd of document.querySelectorAll("dd[data-field]")) {
        dd.textContent = values[dd.dataset.field];
      }
    })
    .catch(() => {});
  source.addEventListener("stage", (event) => {
    const stage = JSON.parse(event.data);
    const tbody = document.querySelector("#stages tbody");
    let row = Array.from(tbody.rows).find((r) => r.dataset.stage === stage.name);
    if (!row) {
      row = tbody.insertRow();
      row.dataset.stage = stage.name;
      row.insertCell().textContent = stage.name;
      row.insertCell().append(document.createElement("span"));
      row.insertCell().className = "duration";
    }
    badge(row.cells[1].firstElementChild, stage.status);
    // Formatted by the server (core::duration::format_elapsed), as the rows it rendered.
    row.cells[2].textContent = stage.duration || "";
    refresh();
  });
  source.addEventListener("status", (event) => {
    const status = JSON.parse(event.data);
    badge(document.getElementById("status"), status.status);
    document.getElementById("reason").textContent = status.reason || "";
    refresh();
    if (!["queued", "waiting", "running"].includes(status.status)) {
      source.close();
      log.dataset.live = "false";
    }
  });
}
