// Linewatch pages: the live alert feed (Server-Sent Events) and the review keyboard.
// Plain JavaScript, served from here: the plant network reaches no CDN.
(function () {
  "use strict";

  function liveAlerts() {
    var rows = document.getElementById("alert-rows");
    var state = document.getElementById("live-state");
    if (!rows || !rows.dataset.stream || !window.EventSource) {
      if (state) { state.textContent = ""; }
      return;
    }
    var source = new EventSource(rows.dataset.stream);
    source.onopen = function () { state.textContent = "(live)"; };
    source.onerror = function () { state.textContent = "(reconnecting…)"; };
    source.addEventListener("alert", function (event) {
      var alert = JSON.parse(event.data);
      if (document.querySelector('[data-alert-id="' + CSS.escape(alert.id) + '"]')) { return; }
      rows.insertAdjacentHTML("afterbegin", alert.html);  // rendered and escaped by the server
      rows.firstElementChild.classList.add("fresh");
      var none = document.getElementById("no-alerts");
      if (none) { none.remove(); }
    });
  }

  function reviewKeys() {
    if (!document.getElementById("sample")) { return; }
    var picture = document.getElementById("picture");
    var typeField = document.getElementById("defect-type");
    function submit(id) {
      var form = document.getElementById(id);
      if (form) { form.requestSubmit(); }
    }
    document.addEventListener("keydown", function (event) {
      if (event.ctrlKey || event.metaKey || event.altKey) { return; }
      var target = event.target;
      if (target && (target.tagName === "INPUT" || target.tagName === "TEXTAREA")) {
        if (event.key === "Escape") { target.blur(); }
        return;  // typing a defect type; Enter submits that form
      }
      switch (event.key) {
        case "n": submit("form-normal"); break;
        case "d": submit("form-defect"); break;
        case "s": submit("form-skip"); break;
        case "o": picture.classList.toggle("show-overlay"); break;
        case "t": typeField.focus(); break;
        default: return;
      }
      event.preventDefault();
    });
  }

  document.addEventListener("DOMContentLoaded", function () {
    liveAlerts();
    reviewKeys();
  });
})();
