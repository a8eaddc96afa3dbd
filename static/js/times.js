// Adds the viewer's local time beside course times, and keeps deadline countdowns live.
(function () {
  "use strict";
  function localise(root) {
    root.querySelectorAll("time.course-time:not([data-localised])").forEach(function (el) {
      el.setAttribute("data-localised", "1");
      var when = new Date(el.getAttribute("datetime"));
      if (isNaN(when)) return;
      var span = document.createElement("span");
      span.className = "local-time";
      span.textContent = " (your time: " + when.toLocaleString([], {
        weekday: "short", day: "numeric", month: "short", hour: "numeric", minute: "2-digit"
      }) + ")";
      el.after(span);
    });
  }
  function pad(n) { return n < 10 ? "0" + n : "" + n; }
  function tick() {
    var now = Date.now();
    document.querySelectorAll(".countdown[data-until]").forEach(function (el) {
      var left = Math.floor((new Date(el.getAttribute("data-until")) - now) / 1000);
      if (isNaN(left)) return;
      if (left <= 0) { el.textContent = "closed"; el.classList.add("over"); return; }
      var d = Math.floor(left / 86400), h = Math.floor(left % 86400 / 3600), m = Math.floor(left % 3600 / 60), s = left % 60;
      el.textContent = (d ? d + "d " : "") + pad(h) + ":" + pad(m) + ":" + pad(s);
      el.classList.toggle("soon", left < 86400);
    });
  }
  document.addEventListener("DOMContentLoaded", function () { localise(document); tick(); setInterval(tick, 1000); });
  document.addEventListener("htmx:afterSwap", function (e) { localise(e.target); tick(); });
})();
