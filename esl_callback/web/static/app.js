/* esl-callback portal: live status by Server-Sent Events, confirmations, the header's menu on
   narrow screens, the service worker of the installable app.
   No libraries. Every text it shows comes from the server: the status sentences are the
   server's (callback/headline.py), rendered and escaped by its templates. */
(function () {
  "use strict";

  document.documentElement.classList.add("js");

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function clock(seconds) {
    var hours = Math.floor(seconds / 3600);
    var minutes = Math.floor((seconds % 3600) / 60);
    var secs = seconds % 60;
    var two = function (n) { return (n < 10 ? "0" : "") + n; };
    return hours ? hours + ":" + two(minutes) + ":" + two(secs) : two(minutes) + ":" + two(secs);
  }

  function tick(box, skew) {
    box.querySelectorAll(".clock[data-running='true']").forEach(function (counter) {
      if (!counter.dataset.since) {
        return;
      }
      var seconds = Math.floor((Date.now() - skew - Date.parse(counter.dataset.since)) / 1000);
      counter.textContent = clock(Math.max(seconds, 0));
    });
  }

  /* The server's rendered (escaped) fragment, parsed inertly: no script in it runs. */
  function replaceWith(box, html) {
    var parsed = new DOMParser().parseFromString(html, "text/html");
    box.replaceChildren.apply(box, Array.prototype.slice.call(parsed.body.childNodes));
  }

  function follow(box) {
    var skew = 0;
    var events = new EventSource(box.getAttribute("data-events"));
    events.addEventListener("status", function (message) {
      var data = JSON.parse(message.data);
      replaceWith(box, data.html);
      skew = Date.now() - Date.parse(data.status.server_time);
      var balance = document.getElementById("balance");
      if (balance && data.balance) {
        balance.textContent = data.balance;
      }
      box.setAttribute("data-state", data.status.state);
      tick(box, skew);
    });
    events.addEventListener("end", function () {
      events.close();
      box.setAttribute("data-ended", "true");
      if (box.hasAttribute("data-reload-on-end")) {
        window.location.reload();
      }
    });
    window.setInterval(function () { tick(box, skew); }, 1000);
  }

  document.querySelectorAll("[data-events]").forEach(follow);

  /* == The header's menu (a disclosure: shown on narrow screens by its button; without
     JavaScript no-script.css keeps it open). Escape closes it, the focus back on its button. == */
  function menu(button) {
    var panel = document.getElementById(button.getAttribute("aria-controls"));
    var show = function (open) {
      button.setAttribute("aria-expanded", open ? "true" : "false");
      panel.classList.toggle("open", open);
    };
    button.addEventListener("click", function () {
      show(button.getAttribute("aria-expanded") !== "true");
    });
    button.parentNode.addEventListener("keydown", function (event) {
      if (event.key === "Escape" && button.getAttribute("aria-expanded") === "true") {
        show(false);
        button.focus();
      }
    });
  }

  document.querySelectorAll(".menu-button[aria-controls]").forEach(menu);

  /* == The service worker: keeps the shell, shows the offline page (never calls offline). == */
  var worker = document.documentElement.getAttribute("data-service-worker");
  if (worker && "serviceWorker" in navigator) {
    navigator.serviceWorker.register(worker).catch(function () {});
  }

  /* ==== Prices, history, time zone (#24, h-portal) ==== */

  /* The call form: the price of the call being typed, from the server, before the click. */
  function quoteAsYouType(form) {
    var box = document.getElementById("quote");
    var destination = form.elements.destination;
    var minDigits = parseInt(form.getAttribute("data-min-digits"), 10) || 3;
    var asked = 0;
    var timer = null;

    function ask() {
      var digits = destination.value.replace(/[^0-9]/g, "");
      var mine = ++asked;
      if (digits.length < minDigits || destination.value.length > 40) {
        box.replaceChildren();
        return;
      }
      var query = new URLSearchParams();
      query.set("destination", destination.value);
      query.set("mode", (form.querySelector("input[name=mode]:checked") || {}).value || "");
      if (form.elements.source && form.elements.source.value) {
        query.set("source", form.elements.source.value);
      }
      fetch(form.getAttribute("data-quote") + "?" + query.toString(), {credentials: "same-origin"})
        .then(function (response) { return response.ok ? response.text() : ""; })
        .then(function (html) {
          if (mine === asked) {
            replaceWith(box, html);
          }
        })
        .catch(function () { /* offline: the server checks again when the form is sent */ });
    }

    function soon() {
      window.clearTimeout(timer);
      timer = window.setTimeout(ask, 300);
    }

    destination.addEventListener("input", soon);
    form.addEventListener("change", soon);
    ask();
  }

  var callForm = document.getElementById("call-form");
  if (callForm && callForm.hasAttribute("data-quote")) {
    quoteAsYouType(callForm);
  }

  /* The browser's time zone, for the server to write times in until one is chosen in Settings
     (time_zones.py). Set on every page, the login page too. */
  try {
    var browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
    if (browserZone && /^[A-Za-z0-9_+\/-]{1,64}$/.test(browserZone)) {
      document.cookie = "tz=" + browserZone +
        "; path=/; max-age=31536000; SameSite=Lax" +
        (window.location.protocol === "https:" ? "; Secure" : "");
    }
  } catch (ignored) { /* no Intl: the server says UTC */ }

  /* The history filter: picking a day chooses "the dates below"; a named period clears them. */
  var historyFilter = document.getElementById("history-filter");
  if (historyFilter) {
    var period = historyFilter.elements.period;
    ["from", "to"].forEach(function (name) {
      historyFilter.elements[name].addEventListener("change", function () {
        if (this.value) {
          period.value = "custom";
        }
      });
    });
    period.addEventListener("change", function () {
      if (period.value !== "custom") {
        historyFilter.elements.from.value = "";
        historyFilter.elements.to.value = "";
      }
    });
  }
})();
