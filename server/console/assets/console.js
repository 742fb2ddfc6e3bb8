// kvnode's status page: fetch the live part of the page again every few
// seconds and swap it in. No framework and no build step: the server
// renders the HTML, this only refreshes it.
(function () {
  "use strict";
  var live = document.getElementById("live");
  var state = document.getElementById("conn-state");
  var every = Number(document.body.getAttribute("data-refresh-ms")) || 3000;
  var refreshes = 0;

  function refresh() {
    // A node that stops answering must not stop the page: give up on a
    // request after a while and try again.
    var abort = typeof AbortController === "function" ? new AbortController() : null;
    var timer = abort ? setTimeout(function () { abort.abort(); }, 10000) : null;
    fetch("/?live=1", { cache: "no-store", signal: abort ? abort.signal : undefined })
      .then(function (r) {
        if (!r.ok) {
          throw new Error("HTTP " + r.status);
        }
        return r.text();
      })
      .then(function (html) {
        live.innerHTML = html;
        refreshes++;
        document.body.setAttribute("data-refreshes", String(refreshes));
        state.textContent = "updated " + new Date().toLocaleTimeString();
        state.className = "ok";
      })
      .catch(function (e) {
        state.textContent = "this node does not answer (" + e.message + "); showing what it last said, retrying";
        state.className = "down";
      })
      .finally(function () {
        if (timer) {
          clearTimeout(timer);
        }
        setTimeout(refresh, every);
      });
  }
  setTimeout(refresh, every);
})();
