// vicidial-cdc status page: refresh the main part every few seconds, served by the
// streamer itself (no CDN). It pauses while dead letters are ticked or a form field
// has focus, so a refresh never drops a selection. The page works without it (reload).
(function () {
  "use strict";
  var REFRESH_MS = 5000;
  var main = document.getElementById("main");
  if (!main) {
    return;
  }
  function busy() {
    if (main.querySelector("input[type=checkbox]:checked")) {
      return true;
    }
    var active = document.activeElement;
    return Boolean(active && active.form && main.contains(active.form) && active.type !== "submit");
  }
  function refresh() {
    if (busy() || document.hidden) {
      return;
    }
    fetch(main.getAttribute("data-refresh"), { credentials: "same-origin", cache: "no-store" })
      .then(function (response) {
        return response.ok ? response.text() : null;
      })
      .then(function (html) {
        if (html !== null && !busy()) {
          main.innerHTML = html;
          main.setAttribute("data-refreshed", String(Date.now()));
        }
      })
      .catch(function () {
        main.setAttribute("data-refresh-failed", String(Date.now()));
      });
  }
  document.addEventListener("submit", function (event) {
    var button = event.submitter;
    var question = button && button.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });
  window.setInterval(refresh, REFRESH_MS);
})();
