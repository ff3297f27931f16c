// Live updates without reloading: the run page swaps its server-rendered "live" part
// (status, graph, timeline, attempts) and appends new log output, by short polling.
// The page works without this script; it only keeps it current.
(function () {
  "use strict";
  var POLL_MS = 1000;

  function followRun(live) {
    var timer = null;
    function tick() {
      fetch(live.dataset.src, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          live.innerHTML = html;
          var body = document.getElementById("live-body");
          if (body && body.dataset.active === "0") { clearInterval(timer); }
        })
        .catch(function () { /* the server may restart: keep polling */ });
    }
    timer = setInterval(tick, POLL_MS);
  }

  function followLogs(box) {
    var cursors = {};
    box.querySelectorAll("pre.log").forEach(function (pre) { cursors[pre.dataset.attemptId] = pre.dataset.seq; });
    var timer = null;
    function tick() {
      var after = Object.keys(cursors).map(function (k) { return k + ":" + cursors[k]; }).join(",");
      fetch(box.dataset.src + "?after=" + encodeURIComponent(after), { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.json() : Promise.reject(r.status); })
        .then(function (data) {
          data.chunks.forEach(function (c) {
            var pre = box.querySelector('pre.log[data-attempt-id="' + c.attempt_id + '"]');
            if (!pre) {
              var h = document.createElement("h3");
              h.textContent = c.task + " #" + c.attempt;
              pre = document.createElement("pre");
              pre.className = "log";
              pre.dataset.attemptId = c.attempt_id;
              box.appendChild(h);
              box.appendChild(pre);
            }
            pre.appendChild(document.createTextNode(c.text));
            pre.scrollTop = pre.scrollHeight;
            cursors[c.attempt_id] = c.seq;
          });
          if (data.ended) { clearInterval(timer); box.dataset.ended = "1"; }
        })
        .catch(function () {});
    }
    if (box.dataset.ended !== "1") { timer = setInterval(tick, POLL_MS); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    var body = document.getElementById("live-body");
    if (live && body && body.dataset.active === "1") { followRun(live); }
    var logs = document.getElementById("logs");
    if (logs) { followLogs(logs); }
  });
})();
