// The packing desk: a barcode scanner types into the one focused input and presses Enter.
(function () {
  "use strict";
  var root = document.getElementById("pack");
  if (!root) { return; }
  var csrf = root.getAttribute("data-csrf");
  var scanInput = root.querySelector("input[name=scan]");
  var weighBox = root.querySelector("[data-weigh]");
  var weightInput = root.querySelector("input[name=weight_g]");
  var refusal = root.querySelector("[data-refusal]");
  var okBox = root.querySelector("[data-ok]");
  var current = null; // the parcel being packed: {waybill, complete, state}
  var audio = null;

  function beep() {
    try {
      audio = audio || new (window.AudioContext || window.webkitAudioContext)();
      var osc = audio.createOscillator();
      var gain = audio.createGain();
      osc.type = "square";
      osc.frequency.value = 880;
      gain.gain.value = 0.4;
      osc.connect(gain);
      gain.connect(audio.destination);
      osc.start();
      osc.stop(audio.currentTime + 0.45);
    } catch (e) { /* no audio device: the red box still shows */ }
    root.setAttribute("data-beeps", String(Number(root.getAttribute("data-beeps") || 0) + 1));
  }

  function refuse(reason) {
    okBox.classList.remove("on");
    refusal.textContent = "✗ " + reason;
    refusal.classList.add("on");
    beep();
  }

  function ok(text) {
    refusal.classList.remove("on");
    okBox.textContent = "✓ " + text;
    okBox.classList.add("on");
  }

  function focusInput() {
    var target = (current && current.complete && current.state === "verified") ? weightInput : scanInput;
    if (document.activeElement !== target) { target.focus(); }
  }

  function show(parcel) {
    var section = root.querySelector("[data-parcel]");
    section.hidden = false;
    if (parcel.carrier) { root.querySelector("[data-carrier]").textContent = parcel.carrier; }
    root.querySelector("[data-waybill]").textContent = parcel.waybill || current.waybill;
    root.querySelector("[data-state]").textContent = parcel.state || "";
    if (parcel.orders) { root.querySelector("[data-orders]").textContent = parcel.orders.join(", "); }
    var body = root.querySelector("[data-lines]");
    body.textContent = "";
    (parcel.lines || []).forEach(function (line) {
      var tr = document.createElement("tr");
      tr.setAttribute("data-sku", line.sku);
      if (line.scanned >= line.qty) { tr.className = "done"; }
      [line.sku, line.name || "", String(line.scanned), String(line.qty)].forEach(function (v, i) {
        var td = document.createElement("td");
        td.textContent = v;
        if (i >= 2) { td.className = "num"; td.setAttribute(i === 2 ? "data-scanned" : "data-qty", v); }
        tr.appendChild(td);
      });
      body.appendChild(tr);
    });
    var complete = (parcel.lines || []).length > 0 && parcel.lines.every(function (l) { return l.scanned >= l.qty; });
    current.complete = complete;
    current.state = parcel.state;
    root.setAttribute("data-state", parcel.state || "");
    if (complete && parcel.state === "verified") {
      weighBox.classList.add("on");
      weightInput.value = "";
    } else {
      weighBox.classList.remove("on");
    }
    focusInput();
  }

  function call(method, path, body) {
    var opts = { method: method, headers: { "X-CSRF-Token": csrf, "Accept": "application/json" },
                 credentials: "same-origin" };
    if (body) { opts.headers["Content-Type"] = "application/json"; opts.body = JSON.stringify(body); }
    return fetch(path, opts).then(function (r) {
      return r.json().then(function (data) { return { status: r.status, data: data }; },
                           function () { return { status: r.status, data: { reason: "HTTP " + r.status } }; });
    }, function () { return { status: 0, data: { reason: "the desk cannot reach the server" } }; });
  }

  function startParcel(waybill) {
    return call("GET", "/pack/parcels/" + encodeURIComponent(waybill)).then(function (r) {
      if (r.status !== 200) { refuse(r.data.reason || r.data.error); return; }
      current = { waybill: r.data.waybill, complete: false, state: r.data.state };
      ok("面单 " + r.data.waybill + " · 请扫商品 scan the items");
      show(r.data);
    });
  }

  function scanItem(code) {
    return call("POST", "/pack/parcels/" + encodeURIComponent(current.waybill) + "/scan",
                { barcode: code }).then(function (r) {
      if (r.data.accepted) {
        ok(code + (r.data.complete ? " · 已齐 complete: 请称重 weigh it" : " ✓"));
        show(r.data);
        return;
      }
      if (r.data.reason && r.data.reason.indexOf("is a waybill label") >= 0) {
        return startParcel(code); // the next label's scan starts the next parcel
      }
      refuse(r.data.reason || r.data.error);
      if (r.data.lines && r.data.lines.length) { show(r.data); }
    });
  }

  scanInput.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") { return; }
    ev.preventDefault();
    var code = scanInput.value.trim();
    scanInput.value = "";
    if (!code) { return; }
    if (!current || current.state === "weighed" || current.state === "shipped") { startParcel(code); }
    else { scanItem(code); }
  });

  weightInput.addEventListener("keydown", function (ev) {
    if (ev.key !== "Enter") { return; }
    ev.preventDefault();
    var grams = weightInput.value.trim();
    weightInput.value = "";
    call("POST", "/pack/parcels/" + encodeURIComponent(current.waybill) + "/weigh",
         { weight_g: grams }).then(function (r) {
      if (r.data.accepted) {
        current.state = r.data.state;
        root.setAttribute("data-state", r.data.state);
        root.querySelector("[data-state]").textContent = r.data.state;
        weighBox.classList.remove("on");
        ok(r.data.weight_g + " g ✓ " + (r.data.state === "shipped" ? "已发货 shipped" : "已称重 weighed")
           + " · 扫下一张面单 scan the next label");
        scanInput.focus();
        return;
      }
      var range = r.data.expected_g ? " (" + r.data.expected_g[0] + "-" + r.data.expected_g[1] + " g)" : "";
      refuse((r.data.reason || r.data.error) + (r.data.reason && r.data.reason.indexOf("expected") >= 0 ? "" : range));
      focusInput();
    });
  });

  // One input, always focused: a click elsewhere never leaves the scanner typing into nothing.
  document.addEventListener("click", function () { setTimeout(focusInput, 0); });
  window.addEventListener("focus", focusInput);
  setInterval(focusInput, 500);
  focusInput();
}());
