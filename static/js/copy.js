// "Copy" buttons: copy the text of the element named by data-copy, and say so; without clipboard access the text is
// selected instead, for the reader to copy with her keyboard.
(function () {
  "use strict";
  function say(button, words) {
    var state = document.getElementById(button.getAttribute("aria-describedby"));
    if (state) state.textContent = words;
  }
  function select(el) {
    var range = document.createRange();
    range.selectNodeContents(el);
    var selection = window.getSelection();
    selection.removeAllRanges();
    selection.addRange(range);
  }
  document.addEventListener("click", function (event) {
    var button = event.target.closest("button[data-copy]");
    if (!button) return;
    var source = document.getElementById(button.dataset.copy);
    if (!source) return;
    var text = source.textContent;
    var fallback = function () {
      select(source);
      say(button, "Selected: press Ctrl+C (⌘C on a Mac) to copy.");
    };
    if (!navigator.clipboard || !window.isSecureContext) { fallback(); return; }
    navigator.clipboard.writeText(text).then(function () { say(button, "Copied."); }, fallback);
  });
})();
