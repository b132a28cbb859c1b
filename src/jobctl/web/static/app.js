// jobctl dashboard: progressive enhancement only. Every page works without this file.
// - keeps [data-live] sections up to date by fetching the page again every data-poll ms
//   and swapping those sections in place (skipping one the user is working in);
// - asks before destructive actions (buttons with data-confirm);
// - "select all" checkboxes; the login page fills in a token passed in the URL's #fragment.
(function () {
  "use strict";

  function busy(section) {
    return section.contains(document.activeElement) && document.activeElement !== document.body ||
      section.querySelector("input[type=checkbox]:checked") !== null;
  }

  function poll(interval) {
    let running = false;
    setInterval(async function () {
      if (running || document.hidden) return;
      running = true;
      try {
        const response = await fetch(location.href, { headers: { "X-Requested-With": "jobctl-poll" }, credentials: "same-origin" });
        if (response.redirected && new URL(response.url).pathname === "/login") { location.reload(); return; }
        if (!response.ok) return;
        const fresh = new DOMParser().parseFromString(await response.text(), "text/html");
        document.querySelectorAll("[data-live]").forEach(function (section) {
          const replacement = fresh.getElementById(section.id);
          if (replacement && !busy(section) && replacement.innerHTML !== section.innerHTML) {
            section.replaceWith(document.importNode(replacement, true));
          }
        });
      } catch (error) {
        // the server is restarting or the network is away: the next tick tries again
      } finally {
        running = false;
      }
    }, interval);
  }

  document.addEventListener("click", function (event) {
    const button = event.target.closest("[data-confirm]");
    if (button && !window.confirm(button.getAttribute("data-confirm"))) event.preventDefault();
  });

  document.addEventListener("change", function (event) {
    if (!event.target.matches("[data-select-all]")) return;
    const form = event.target.closest("form");
    form.querySelectorAll("input[name=ids]").forEach(function (box) { box.checked = event.target.checked; });
  });

  document.addEventListener("DOMContentLoaded", function () {
    const login = document.getElementById("login");
    const token = new URLSearchParams(location.hash.slice(1)).get("token");
    if (login && token) {
      history.replaceState(null, "", location.pathname + location.search);  // the token leaves the address bar
      login.elements.token.value = token;
      login.submit();
      return;
    }
    const interval = parseInt(document.body.getAttribute("data-poll"), 10);
    if (interval > 0 && document.querySelector("[data-live]")) poll(interval);
  });
})();
