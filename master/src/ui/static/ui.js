// cmdb web UI: small enhancements on top of server-rendered pages.
// Every page works without this file; it adds live job returns and a
// "back" link. No inline script is used anywhere (see the CSP).
"use strict";

(function () {
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  function fmt(ms) {
    var d = new Date(ms);
    return d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) +
      " " + pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds());
  }
  function cell(text, cls) {
    var td = document.createElement("td");
    if (cls) { td.className = cls; }
    td.textContent = text;
    return td;
  }
  function badge(ok) {
    var td = document.createElement("td");
    var span = document.createElement("span");
    span.className = "badge " + (ok ? "b-ok" : "b-failed");
    span.textContent = ok ? "ok" : "failed";
    td.appendChild(span);
    return td;
  }

  function followJob(live) {
    var url = live.getAttribute("data-stream");
    var body = document.querySelector("#returns tbody");
    var count = document.getElementById("returned");
    if (!url || !body || !window.EventSource) { return; }
    var source = new EventSource(url);
    live.hidden = false;
    live.textContent = "Waiting for returns…";
    source.addEventListener("ret", function (ev) {
      var r;
      try { r = JSON.parse(ev.data); } catch (e) { return; }
      var minion = String(r.minion);
      var rows = body.querySelectorAll("tr[data-minion]");
      for (var i = 0; i < rows.length; i++) {
        if (rows[i].getAttribute("data-minion") === minion) { return; }
      }
      var tr = document.createElement("tr");
      tr.setAttribute("data-minion", minion);
      tr.className = "arrived";
      tr.appendChild(cell(minion));
      tr.appendChild(badge(!!r.success));
      tr.appendChild(cell(String(r.retcode), "num"));
      tr.appendChild(cell(fmt(r.ended_ms), "nowrap"));
      var td = document.createElement("td");
      var pre = document.createElement("pre");
      pre.className = "data";
      pre.textContent = typeof r.data === "string" ? r.data : JSON.stringify(r.data, null, 2);
      td.appendChild(pre);
      tr.appendChild(td);
      body.appendChild(tr);
      if (count) { count.textContent = String(body.querySelectorAll("tr[data-minion]").length); }
    });
    source.addEventListener("done", function (ev) {
      var missing = [];
      try { missing = JSON.parse(ev.data).missing || []; } catch (e) { missing = []; }
      var failed = body.querySelectorAll(".b-failed").length;
      var text = missing.length
        ? missing.length + " minion(s) did not return: " + missing.join(", ") + "."
        : "Every minion returned.";
      if (failed) { text += " " + failed + " failed."; }
      live.textContent = text;
      live.setAttribute("data-done", "1");
      source.close();
    });
    source.onerror = function () {
      if (live.getAttribute("data-done") !== "1") {
        live.textContent = "The live view stopped; reload the page for the returns stored since.";
      }
      source.close();
    };
  }

  document.addEventListener("DOMContentLoaded", function () {
    var live = document.getElementById("live");
    if (live && live.getAttribute("data-stream") && !live.hidden) { followJob(live); }
    var backs = document.querySelectorAll("a[data-back]");
    for (var i = 0; i < backs.length; i++) {
      backs[i].addEventListener("click", function (ev) {
        if (window.history.length > 1) { ev.preventDefault(); window.history.back(); }
      });
    }
  });
})();
