/* esl-callback portal: live status by Server-Sent Events, confirmations, the phone menu.
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
})();
