// The Bank Feed follows along: every few seconds it asks feed.json for the newest runs and adds
// those the table does not show yet, newest at the top. Rows are built with textContent only
// (nothing the server sends is ever parsed as HTML). Without this script the page is a plain
// paged list; it stops when the session ends and says so.
"use strict";

(function () {
  var table = document.getElementById("feed");
  var live = document.getElementById("feed-live");
  if (!table || !table.dataset.poll || !window.fetch) {
    return;
  }
  var body = table.tBodies[0];
  var every = 3000;
  var timer = null;

  function cell(row, text, extra, className) {
    var td = document.createElement("td");
    if (className) {
      td.className = className;
    }
    var span = document.createElement("span");
    span.textContent = text;
    td.appendChild(span);
    if (extra) {
      td.appendChild(document.createElement("br"));
      var help = document.createElement("span");
      help.className = "help";
      help.textContent = extra;
      td.appendChild(help);
    }
    row.appendChild(td);
    return span;
  }

  function rowOf(entry) {
    var row = document.createElement("tr");
    row.dataset.run = String(entry.id);
    row.className = "fresh";
    cell(row, entry.at, entry.milliseconds + " ms");
    cell(row, entry.source, entry.file_name);
    cell(row, entry.connector, entry.bank);
    cell(row, entry.login_id === null ? "" : "login " + entry.login_id, entry.customer);
    cell(row, String(entry.added), "", "num");
    cell(row, String(entry.skipped), "", "num");
    var outcome = cell(row, entry.ok ? "ok" : entry.outcome, entry.ok ? "" : entry.error);
    outcome.className = entry.ok ? "status-delivered" : "status-failed";
    return row;
  }

  function shown() {
    var ids = {};
    for (var i = 0; i < body.rows.length; i++) {
      ids[body.rows[i].dataset.run] = true;
    }
    return ids;
  }

  function place(row, id) {
    // newest first: before the first row with a smaller id
    for (var i = 0; i < body.rows.length; i++) {
      if (Number(body.rows[i].dataset.run) < id) {
        body.insertBefore(row, body.rows[i]);
        return;
      }
    }
    body.appendChild(row);
  }

  function stop(message) {
    if (timer !== null) {
      window.clearInterval(timer);
      timer = null;
    }
    live.textContent = message;
  }

  function poll() {
    if (document.hidden) {
      return;
    }
    fetch(table.dataset.poll, {
      credentials: "same-origin",
      headers: { accept: "application/json" },
      redirect: "error",
    })
      .then(function (answer) {
        if (!answer.ok) {
          throw new Error("HTTP " + answer.status);
        }
        return answer.json();
      })
      .then(function (data) {
        var ids = shown();
        var added = 0;
        data.entries
          .slice()
          .reverse()
          .forEach(function (entry) {
            if (!ids[String(entry.id)]) {
              place(rowOf(entry), entry.id);
              added += 1;
            }
          });
        if (added) {
          var empty = document.getElementById("feed-empty");
          if (empty) {
            empty.remove();
          }
          live.textContent = added === 1 ? "1 new run." : added + " new runs.";
        }
      })
      .catch(function () {
        stop("Live updates stopped (signed out, or the server is not answering). Reload the page to see new runs.");
      });
  }

  timer = window.setInterval(poll, every);
})();
