// The pages that wait for the bank (the decoupled approval, a slow bank, the first fetch) ask
// the server again every few seconds. Without JavaScript a <meta http-equiv="refresh"> does it,
// which reloads the whole page each time: a screen reader starts over, a phone flickers, and
// the user cannot stop it (WCAG 2.2.1). With JavaScript, this asks in the background (the same
// GET, so the server polls the bank just as the reload would) and replaces the page only when
// its state changed: the bank answered, or the flow went on.
(function () {
  var main = document.querySelector("main[data-state]");
  var every = document.querySelector('meta[name="bankhub-poll"]');
  if (!main || !every) {
    return;
  }
  var seconds = Math.max(1, parseInt(every.getAttribute("content"), 10) || 1);
  var state = main.getAttribute("data-state");
  function ask() {
    fetch("/v2/connect/session", {
      credentials: "same-origin",
      redirect: "manual",
      headers: { "X-Bankhub-Poll": "1" },
    })
      .then(function (response) {
        if (response.type === "opaqueredirect" || !response.ok) {
          // the flow ended (the way back to the app) or the page has more to say
          window.location.replace("/v2/connect/session");
          return null;
        }
        return response.text();
      })
      .then(function (html) {
        if (html === null) {
          return;
        }
        var page = new DOMParser().parseFromString(html, "text/html");
        var next = page.querySelector("main[data-state]");
        if (!next || next.getAttribute("data-state") !== state) {
          window.location.replace("/v2/connect/session");
          return;
        }
        window.setTimeout(ask, seconds * 1000);
      })
      .catch(function () {
        window.setTimeout(ask, seconds * 1000);
      });
  }
  window.setTimeout(ask, seconds * 1000);
})();
