// rearm Manager: live updates over server-sent events. The only script of the Manager; no
// build step, nothing loaded from elsewhere. Pages work without it (they are just not live).
//
// A page that has live parts names its stream in <meta name="rearm-live">. The server sends
// `fragment` events: {"id": element ID, "html": the element's new content}, rendered by the
// same templates as the page itself (and escaped there).
"use strict";

(function () {
  const meta = document.querySelector('meta[name="rearm-live"]');
  const indicator = document.getElementById("live-status");

  function say(text, on) {
    if (!indicator) return;
    indicator.textContent = text;
    indicator.classList.toggle("on", on);
    indicator.classList.toggle("off", !on);
  }

  function replace(target, html) {
    // Keep the keyboard focus where it was when the element it was on is re-rendered.
    const focused = document.activeElement;
    const focusId = focused && focused.id && target.contains(focused) ? focused.id : null;
    target.innerHTML = html;
    if (focusId) {
      const again = document.getElementById(focusId);
      if (again) again.focus();
    }
  }

  if (!meta || !("EventSource" in window)) return;
  const source = new EventSource(meta.content);
  let updates = 0;

  source.addEventListener("open", function () {
    say("live", true);
  });
  source.addEventListener("error", function () {
    // EventSource reconnects by itself unless the server refused the stream outright.
    say(source.readyState === EventSource.CLOSED ? "not live: reload the page" : "reconnecting", false);
  });
  source.addEventListener("fragment", function (event) {
    const fragment = JSON.parse(event.data);
    const target = document.getElementById(fragment.id);
    if (!target) return;
    replace(target, fragment.html);
    updates += 1;
    document.body.dataset.liveUpdates = String(updates);
  });
  source.addEventListener("logout", function () {
    source.close();
    window.location.assign("/login?next=" + encodeURIComponent(location.pathname + location.search));
  });
  source.addEventListener("gone", function () {
    source.close();
    say("this no longer exists", false);
  });
})();
