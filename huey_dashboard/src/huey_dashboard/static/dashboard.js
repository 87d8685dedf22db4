// The dashboard's only script: live updates over server-sent events, and small conveniences.
// Pages work without it (reload to update); with it they follow the queue as it changes.
(function () {
  "use strict";
  var body = document.body;
  var MAX_ROWS = 500;

  // Destructive buttons ask first (their form carries data-confirm).
  document.addEventListener("submit", function (e) {
    var question = e.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) e.preventDefault();
  });
  document.addEventListener("change", function (e) {
    if (e.target.hasAttribute && e.target.hasAttribute("data-autosubmit")) e.target.form.submit();
  });

  var streamQuery = body.getAttribute("data-stream");
  if (!streamQuery || !window.EventSource) return;
  var live = document.getElementById("live");
  function setLive(on) {
    if (!live) return;
    live.textContent = on ? "live" : "reconnecting";
    live.className = on ? "live on" : "live off";
  }
  var source = new EventSource("/stream?" + streamQuery);
  source.onopen = function () { setLive(true); };
  source.onerror = function () { setLive(false); };

  // Pages other than the feed: fetch the page's content again when the server says it changed.
  var fetching = false, pending = false;
  function refresh() {
    var content = document.getElementById("content");
    var active = document.activeElement;
    if (fetching || (active && content.contains(active) && active.tagName === "INPUT")) {
      pending = true;  // after the current fetch, or once the user leaves the field
      return;
    }
    fetching = true;
    fetch(window.location.href, { headers: { "X-Fragment": "1" }, credentials: "same-origin" })
      .then(function (r) { return r.ok ? r.text() : null; })
      .then(function (html) { if (html !== null) content.innerHTML = html; })
      .catch(function () { setLive(false); })
      .then(function () {
        fetching = false;
        if (pending) { pending = false; refresh(); }
      });
  }
  source.addEventListener("refresh", refresh);
  document.addEventListener("focusout", function () { if (pending && !fetching) { pending = false; refresh(); } });

  // The event feed page: new events go on top.
  function cell(row, text, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (text instanceof Node) td.appendChild(text); else td.textContent = text == null ? "" : String(text);
    row.appendChild(td);
  }
  function clock(stamp) {
    var d = new Date(stamp * 1000);
    return d.toTimeString().slice(0, 8);
  }
  function seconds(v) {
    if (v < 1) return Math.round(v * 1000) + " ms";
    if (v < 120) return v.toFixed(1) + " s";
    return Math.round(v / 60) + " min";
  }
  function detail(e) {
    var parts = [];
    if (typeof e.duration === "number") parts.push(seconds(e.duration));
    if ((e.status === "retrying" || e.status === "error") && e.retries != null) parts.push("retries left " + e.retries);
    if (e.status === "progress") parts.push(e.done + (e.total ? "/" + e.total : "") + (e.note ? " " + e.note : ""));
    if (e.reason) parts.push(e.reason);
    if (e.error && e.traceback) { var lines = String(e.traceback).trim().split("\n"); parts.push(lines[lines.length - 1]); }
    return parts.join(" ");
  }
  source.addEventListener("feed", function (msg) {
    var e = JSON.parse(msg.data);
    var tbody = document.querySelector("#feed tbody");
    if (!tbody) return;
    var empty = document.getElementById("feed-empty");
    if (empty) empty.remove();
    var row = document.createElement("tr");
    row.className = "new";
    cell(row, clock(e.timestamp));
    var status = document.createElement("span");
    status.className = "status s-" + e.status;
    status.textContent = e.status;
    cell(row, status);
    cell(row, e.task || "-");
    if (e.id) {
      var link = document.createElement("a");
      link.className = "mono";
      link.href = "/tasks/" + encodeURIComponent(e.id);
      link.textContent = String(e.id).slice(0, 8);
      cell(row, link);
    } else cell(row, "-");
    cell(row, detail(e), "detail");
    cell(row, e.worker || e.consumer || "", "mono muted");
    tbody.insertBefore(row, tbody.firstChild);
    while (tbody.rows.length > MAX_ROWS) tbody.deleteRow(tbody.rows.length - 1);
  });
})();
