// A bank that answers in the URL fragment (the OpenID hybrid flow of UK Open Banking) leaves
// its answer where no server sees it; this hands the fragment back to the return step as its
// query. Without a fragment there is nothing to hand over: back to the connect page.
(function () {
  var fragment = window.location.hash.slice(1);
  var next = fragment ? window.location.pathname + "?" + fragment : "/v2/connect/session";
  window.location.replace(next);
})();
