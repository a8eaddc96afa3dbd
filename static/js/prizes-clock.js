// Counts the talk clock down between polls; the server's remaining seconds are the truth on every swap.
(function () {
  "use strict";
  var timer = null;
  function format(seconds) {
    var sign = seconds < 0 ? "-" : "";
    var s = Math.abs(seconds);
    var rest = s % 60;
    return sign + Math.floor(s / 60) + ":" + (rest < 10 ? "0" : "") + rest;
  }
  function arm() {
    var clocks = document.querySelectorAll(".clock[data-remaining]");
    var loadedAt = Date.now();
    clocks.forEach(function (el) { el.dataset.base = el.dataset.remaining; });
    if (timer) clearInterval(timer);
    timer = setInterval(function () {
      clocks.forEach(function (el) {
        if (el.dataset.running !== "1") return;
        var left = parseInt(el.dataset.base, 10) - Math.floor((Date.now() - loadedAt) / 1000);
        el.textContent = format(left);
        el.classList.toggle("over", left <= 0);
        // Past zero the talk is over time, not "running": say so between the server's answers too.
        var state = el.parentElement && el.parentElement.querySelector(".clock-state");
        if (state) {
          state.textContent = left <= 0 ? "over time" : "running";
          state.classList.toggle("over", left <= 0);
        }
      });
    }, 250);
  }
  document.addEventListener("DOMContentLoaded", arm);
  document.addEventListener("htmx:afterSwap", arm);
})();
