// Lets keyboard users scroll a table that is wider than the screen: its box becomes a labelled, focusable region.
// On a phone the stylesheet stacks each row into a card; every cell then carries its column's heading (data-label).
(function () {
  "use strict";
  function labelCells(table) {
    var heads = table.querySelectorAll("thead tr:first-child th");
    if (!heads.length) return;
    var names = Array.prototype.map.call(heads, function (th) { return th.textContent.trim(); });
    table.classList.add("stack");
    table.querySelectorAll("tbody tr").forEach(function (row) {
      var column = 0;
      Array.prototype.forEach.call(row.children, function (cell) {
        var name = names[column] || "";
        if (name && !cell.hasAttribute("data-label")) cell.setAttribute("data-label", name);
        column += cell.colSpan || 1;
      });
    });
  }
  function label(wrap) {
    var caption = wrap.querySelector("caption");
    if (caption && caption.textContent.trim()) return caption.textContent.trim();
    var section = wrap.closest("section, main");
    var heading = section && section.querySelector("h1, h2, h3");
    return heading ? heading.textContent.trim() : "Table";
  }
  function update() {
    document.querySelectorAll(".table-wrap table").forEach(labelCells);
    document.querySelectorAll(".table-wrap").forEach(function (wrap) {
      if (wrap.scrollWidth > wrap.clientWidth + 1) {
        wrap.setAttribute("tabindex", "0");
        wrap.setAttribute("role", "region");
        wrap.setAttribute("aria-label", label(wrap));
      } else if (wrap.getAttribute("role") === "region") {
        wrap.removeAttribute("tabindex");
        wrap.removeAttribute("role");
        wrap.removeAttribute("aria-label");
      }
    });
  }
  var pending = null;
  function later() {
    if (pending) clearTimeout(pending);
    pending = setTimeout(update, 150);
  }
  document.addEventListener("DOMContentLoaded", update);
  document.addEventListener("htmx:afterSwap", update);
  window.addEventListener("resize", later);
})();
