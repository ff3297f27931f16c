// Live updates without reloading, by short polling: every element with data-live-src is
// replaced by a fresh server-rendered copy of itself every data-live-every ms, until that
// copy says data-active="0" (a finished run); the run page's logs are appended as they
// come. The pages work without this script; it only keeps them current.
(function () {
  "use strict";

  function follow(box) {
    var every = parseInt(box.dataset.liveEvery || "2000", 10);
    var timer = null;
    var busy = false;
    function tick() {
      if (busy) { return; }
      busy = true;
      fetch(box.dataset.liveSrc, { credentials: "same-origin" })
        .then(function (r) { return r.ok ? r.text() : Promise.reject(r.status); })
        .then(function (html) {
          box.innerHTML = html;
          if (box.querySelector('[data-active="0"]')) { clearInterval(timer); }
        })
        .catch(function () { /* the server may restart: keep polling */ })
        .then(function () { busy = false; });
    }
    if (!box.querySelector('[data-active="0"]')) { timer = setInterval(tick, every); }
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
    if (box.dataset.ended !== "1") { timer = setInterval(tick, 1000); }
  }

  document.addEventListener("DOMContentLoaded", function () {
    document.querySelectorAll("[data-live-src]").forEach(follow);
    var logs = document.getElementById("logs");
    if (logs) { followLogs(logs); }
  });
})();
