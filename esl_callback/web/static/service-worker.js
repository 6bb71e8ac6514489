/* esl-callback portal: the service worker of the installable app (see esl_callback/web/shell.py,
   which serves it at /sw.js with VERSION, SHELL and OFFLINE set above this line).
   It keeps the shell only: CSS, JS, icons, the offline page. Pages always come from the
   network and are never stored; when it cannot be reached, the offline page is shown. Nothing
   else passes through here: the API, live status and every form (POST) go to the network
   untouched, so no call is ever placed, queued or replayed offline. */
"use strict";

self.addEventListener("install", function (event) {
  event.waitUntil(
    caches.open(VERSION).then(function (cache) {
      /* Without cookies: the shell is the same for everyone. */
      return cache.addAll(SHELL.map(function (path) {
        return new Request(path, { credentials: "omit", cache: "reload" });
      }));
    }).then(function () { return self.skipWaiting(); })
  );
});

self.addEventListener("activate", function (event) {
  event.waitUntil(
    caches.keys().then(function (names) {
      return Promise.all(names.filter(function (name) { return name !== VERSION; })
        .map(function (name) { return caches.delete(name); }));
    }).then(function () { return self.clients.claim(); })
  );
});

self.addEventListener("fetch", function (event) {
  var request = event.request;
  var url = new URL(request.url);
  if (request.method !== "GET" || url.origin !== self.location.origin) {
    return;
  }
  if (SHELL.indexOf(url.pathname) !== -1) {
    event.respondWith(caches.open(VERSION).then(function (cache) {
      return cache.match(url.pathname).then(function (kept) { return kept || fetch(request); });
    }));
  } else if (request.mode === "navigate") {
    event.respondWith(fetch(request).catch(function () {
      return caches.open(VERSION).then(function (cache) { return cache.match(OFFLINE); });
    }));
  }
});
