/* esl-callback portal: live status by Server-Sent Events, confirmations. No libraries. */
(function () {
  "use strict";

  document.addEventListener("submit", function (event) {
    var question = event.target.getAttribute("data-confirm");
    if (question && !window.confirm(question)) {
      event.preventDefault();
    }
  });

  function tick(box, skew) {
    var counter = box.querySelector(".duration[data-running='true']");
    if (!counter || !counter.dataset.since) {
      return;
    }
    var seconds = Math.floor((Date.now() - skew - Date.parse(counter.dataset.since)) / 1000);
    counter.textContent = String(Math.max(seconds, 0));
  }

  function follow(box) {
    var skew = 0;
    var events = new EventSource(box.getAttribute("data-events"));
    events.addEventListener("status", function (message) {
      var data = JSON.parse(message.data);
      box.innerHTML = data.html;
      skew = Date.now() - Date.parse(data.status.server_time);
      var balance = document.getElementById("balance");
      if (balance && data.balance) {
        balance.textContent = data.balance;
      }
      box.setAttribute("data-state", data.status.state);
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
