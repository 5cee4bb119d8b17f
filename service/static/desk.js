// The clerk's desk (issue 21): select-all on the queue page, and the keyboard.
//   /        focus the search box          j / k   next / previous order in the queue
//   Enter    open the order under the cursor   x   tick or untick it
// Everything else is reachable with Tab: every action is a plain form with a button.
(function () {
  "use strict";
  function rows() { return Array.prototype.slice.call(document.querySelectorAll("tr[data-order]")); }
  function current() { return document.querySelector("tr[data-order].cursor"); }
  function move(step) {
    var all = rows();
    if (!all.length) { return; }
    var at = all.indexOf(current());
    var next = at < 0 ? (step > 0 ? 0 : all.length - 1) : Math.min(all.length - 1, Math.max(0, at + step));
    all.forEach(function (r) { r.classList.remove("cursor"); r.removeAttribute("aria-current"); });
    all[next].classList.add("cursor");
    all[next].setAttribute("aria-current", "true");
    all[next].scrollIntoView({ block: "nearest" });
  }
  function typing(target) {
    var tag = (target && target.tagName) || "";
    return tag === "INPUT" || tag === "TEXTAREA" || tag === "SELECT" || (target && target.isContentEditable);
  }
  document.addEventListener("change", function (event) {
    var box = event.target;
    if (box && box.matches && box.matches("input[data-select-all]")) {
      var form = box.closest("form") || document;
      form.querySelectorAll("input[name=order_ids]").forEach(function (b) { b.checked = box.checked; });
    }
  });
  document.addEventListener("keydown", function (event) {
    if (event.ctrlKey || event.metaKey || event.altKey) { return; }
    if (typing(event.target)) {
      if (event.key === "Escape") { event.target.blur(); }
      return;
    }
    var row = current();
    if (event.key === "/") {
      var search = document.querySelector("input[name=q]");
      if (search) { event.preventDefault(); search.focus(); search.select(); }
    } else if (event.key === "j") {
      event.preventDefault(); move(1);
    } else if (event.key === "k") {
      event.preventDefault(); move(-1);
    } else if (event.key === "Enter" && row) {
      var link = row.querySelector("a[href^='/orders/']");
      if (link) { event.preventDefault(); window.location.assign(link.getAttribute("href")); }
    } else if (event.key === "x" && row) {
      var tick = row.querySelector("input[name=order_ids]");
      if (tick) { event.preventDefault(); tick.checked = !tick.checked; }
    }
  });
})();
