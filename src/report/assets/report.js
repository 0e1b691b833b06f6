(function () {
  "use strict";
  var doc = document;
  var root = doc.documentElement;
  var boxes = Array.prototype.slice.call(doc.querySelectorAll("input[data-status-filter]"));
  var text = doc.getElementById("filter-text");
  var rows = Array.prototype.slice.call(doc.querySelectorAll("#items tbody tr[data-status]"));
  var shown = doc.getElementById("shown-count");
  var empty = doc.getElementById("no-match");

  function fromHash() {
    var params = new URLSearchParams(location.hash.replace(/^#/, ""));
    var status = params.get("status");
    var want = status === null ? null : status.split(",");
    boxes.forEach(function (b) {
      b.checked = want === null || want.indexOf(b.value) >= 0;
    });
    text.value = params.get("q") || "";
  }

  function toHash() {
    var on = boxes.filter(function (b) { return b.checked; });
    var parts = [];
    if (on.length !== boxes.length) {
      parts.push("status=" + on.map(function (b) { return b.value; }).join(","));
    }
    var q = text.value.trim();
    if (q) { parts.push("q=" + encodeURIComponent(q)); }
    var target = parts.length ? "#" + parts.join("&") : location.pathname + location.search;
    try { history.replaceState(null, "", target); } catch (e) { /* file:// in some browsers */ }
  }

  function apply() {
    var on = {};
    boxes.forEach(function (b) { on[b.value] = b.checked; });
    var q = text.value.trim().toLowerCase();
    var n = 0;
    rows.forEach(function (r) {
      var match = on[r.getAttribute("data-status")] === true &&
        (q === "" || (r.getAttribute("data-search") || "").indexOf(q) >= 0);
      r.hidden = !match;
      if (match) { n += 1; }
    });
    shown.textContent = String(n);
    empty.hidden = n !== 0;
    root.setAttribute("data-filter", boxes.filter(function (b) { return b.checked; })
      .map(function (b) { return b.value; }).join(",") + (q ? "|" + q : ""));
  }

  boxes.forEach(function (b) {
    b.addEventListener("change", function () { apply(); toHash(); });
  });
  text.addEventListener("input", function () { apply(); toHash(); });
  Array.prototype.slice.call(doc.querySelectorAll("button[data-preset]")).forEach(function (btn) {
    btn.addEventListener("click", function () {
      var want = btn.getAttribute("data-preset").split(",");
      boxes.forEach(function (b) { b.checked = want[0] === "all" || want.indexOf(b.value) >= 0; });
      apply();
      toHash();
    });
  });
  window.addEventListener("hashchange", function () { fromHash(); apply(); });

  fromHash();
  apply();
  root.classList.remove("nojs");
  root.setAttribute("data-js", "ready");
})();
