// Renders generated songs as sheet music with playback (abcjs, served by the site itself).
(function () {
  "use strict";
  var SVG_NS = "http://www.w3.org/2000/svg";

  // The site's Content-Security-Policy refuses inline styles (style-src 'self'). abcjs writes two while it draws: a
  // style attribute on the SVG it measures text with, and a <style> element whose only rule stops text selection while
  // notes are dragged (site.css carries that rule). While abcjs draws, style attributes are set through the CSSOM,
  // which the policy allows, and its <style> element is left out.
  // Its playback controls are abcjs's own fixed markup with one style attribute (on a warning that abcjs-audio.css
  // hides): that attribute is dropped from the markup before it is parsed.
  function withoutInlineStyles(draw) {
    var setAttribute = Element.prototype.setAttribute;
    var insertBefore = Node.prototype.insertBefore;
    var innerHTML = Object.getOwnPropertyDescriptor(Element.prototype, "innerHTML");
    Object.defineProperty(Element.prototype, "innerHTML", {
      configurable: true,
      get: innerHTML.get,
      set: function (html) {
        innerHTML.set.call(this, String(html).replace(/\sstyle="[^"]*"/g, ""));
      },
    });
    Element.prototype.setAttribute = function (name, value) {
      if (String(name).toLowerCase() === "style") {
        this.style.cssText = String(value);
        return undefined;
      }
      return setAttribute.call(this, name, value);
    };
    Node.prototype.insertBefore = function (node, reference) {
      if (node && node.namespaceURI === SVG_NS && node.localName === "style") return node;
      return insertBefore.call(this, node, reference);
    };
    try {
      return draw();
    } finally {
      Element.prototype.setAttribute = setAttribute;
      Node.prototype.insertBefore = insertBefore;
      Object.defineProperty(Element.prototype, "innerHTML", innerHTML);
    }
  }

  // Notes are drawn at abcjs's own size (a note head about 8 px tall, as on printed music), never scaled down to the
  // box: the staff is as wide as the box, and a tune longer than that breaks into more staves. A measure wider than a
  // phone's screen scrolls sideways inside its own box, not the page (abcjs hides what overflows its box).
  var PADDING = 15;
  function drawingOptions(target) {
    return {
      add_classes: true,
      paddingleft: PADDING,
      paddingright: PADDING,
      staffwidth: Math.max(160, target.clientWidth - 2 * PADDING),
      wrap: { minSpacing: 1.5, maxSpacing: 2.7, preferredMeasuresPerLine: 4 },
    };
  }

  function render() {
    if (!window.ABCJS) return;
    document.querySelectorAll("pre.abc-source:not([data-rendered])").forEach(function (pre) {
      pre.setAttribute("data-rendered", "1");
      var id = pre.getAttribute("data-target");
      var target = document.getElementById(id);
      if (!target) return;
      var visual;
      try {
        visual = withoutInlineStyles(function () {
          return ABCJS.renderAbc(target, pre.textContent, drawingOptions(target))[0];
        });
      } catch (err) {
        target.textContent = "This tune cannot be drawn as sheet music.";
        return;
      }
      target.style.overflowX = "auto";
      target.style.overflowY = "hidden";
      if (target.scrollWidth > target.clientWidth) {
        // A box that scrolls is reached with the keyboard too, and named for what it holds.
        target.tabIndex = 0;
        target.setAttribute("role", "region");
        target.setAttribute("aria-label", "Sheet music, scrolls sideways");
      }
      var audio = document.getElementById(id + "-audio");
      if (audio && ABCJS.synth && ABCJS.synth.supportsAudio()) {
        var controller = new ABCJS.synth.SynthController();
        withoutInlineStyles(function () {
          controller.load(audio, null, { displayPlay: true, displayProgress: true });
        });
        // The note samples come from the site itself (labs/sounds.py), never from another host.
        controller.setTune(visual, false, { soundFontUrl: "/sounds/" }).catch(function () { audio.textContent = "Playback is not available."; });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSwap", render);
})();
