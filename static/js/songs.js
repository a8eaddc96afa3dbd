// Renders generated songs as sheet music with playback (abcjs, served by the site itself).
(function () {
  "use strict";
  function render() {
    if (!window.ABCJS) return;
    document.querySelectorAll("pre.abc-source:not([data-rendered])").forEach(function (pre) {
      pre.setAttribute("data-rendered", "1");
      var id = pre.getAttribute("data-target");
      var target = document.getElementById(id);
      if (!target) return;
      var visual;
      try {
        visual = ABCJS.renderAbc(target, pre.textContent, { responsive: "resize", add_classes: true })[0];
      } catch (err) {
        target.textContent = "This tune cannot be drawn as sheet music.";
        return;
      }
      var audio = document.getElementById(id + "-audio");
      if (audio && ABCJS.synth && ABCJS.synth.supportsAudio()) {
        var controller = new ABCJS.synth.SynthController();
        controller.load(audio, null, { displayPlay: true, displayProgress: true });
        controller.setTune(visual, false).catch(function () { audio.textContent = "Playback is not available."; });
      }
    });
  }
  document.addEventListener("DOMContentLoaded", render);
  document.addEventListener("htmx:afterSwap", render);
})();
