// report.html's script, inlined into the page: sorts and filters the cell table, shows the noise
// floor's hover, and draws a cell's drill-down from the page's JSON. Data enters the page only through
// textContent and setAttribute, never as markup. No network, no library.
(function () {
  "use strict";
  var DATA = JSON.parse(document.getElementById("report-data").textContent);
  var SVG = "http://www.w3.org/2000/svg";
  var table = document.getElementById("cells");
  var tbody = table.tBodies[0];
  var rows = Array.prototype.slice.call(tbody.rows);
  rows.forEach(function (r, i) { r.dataset.order = i; });

  function el(ns, tag, attrs, text) {
    var e = ns ? document.createElementNS(ns, tag) : document.createElement(tag);
    Object.keys(attrs || {}).forEach(function (k) { e.setAttribute(k, attrs[k]); });
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function fmt(x, nd) { return x === null || x === undefined ? "—" : x.toFixed(nd === undefined ? 3 : nd); }

  // ---------------------------------------------------------------- sorting
  var heads = Array.prototype.slice.call(table.tHead.rows[0].cells);
  function sortBy(th) {
    var col = heads.indexOf(th), num = th.dataset.type === "num";
    var dir = th.getAttribute("aria-sort") === "ascending" ? -1 : 1;
    heads.forEach(function (h) { h.removeAttribute("aria-sort"); });
    th.setAttribute("aria-sort", dir === 1 ? "ascending" : "descending");
    var keyed = rows.map(function (r) {
      var td = r.cells[col];
      var v = num ? (td.hasAttribute("data-v") ? parseFloat(td.dataset.v) : null) : td.textContent;
      return { r: r, v: v, o: +r.dataset.order };
    });
    keyed.sort(function (a, b) {
      if (a.v === null && b.v === null) { return a.o - b.o; }
      if (a.v === null) { return 1; }  // missing values last, whichever the direction
      if (b.v === null) { return -1; }
      var c = num ? a.v - b.v : a.v.localeCompare(b.v);
      return c !== 0 ? dir * c : a.o - b.o;
    });
    keyed.forEach(function (k) { tbody.appendChild(k.r); });
  }
  heads.forEach(function (th) {
    if (!th.dataset.key) { return; }
    th.addEventListener("click", function () { sortBy(th); });
    th.addEventListener("keydown", function (e) { if (e.key === "Enter") { sortBy(th); } });
  });

  // ---------------------------------------------------------------- filtering
  var selects = Array.prototype.slice.call(document.querySelectorAll("select[data-filter]"));
  function applyFilters() {
    var n = 0;
    rows.forEach(function (r) {
      var ok = selects.every(function (s) { return !s.value || r.dataset[s.dataset.filter] === s.value; });
      r.hidden = !ok;
      n += ok ? 1 : 0;
    });
    document.getElementById("shown").textContent = n + " of " + rows.length + " cells";
  }
  selects.forEach(function (s) { s.addEventListener("change", applyFilters); });
  applyFilters();

  // ---------------------------------------------------------------- hover (noise floor)
  var tip = document.getElementById("tip");
  document.querySelectorAll("svg .dot").forEach(function (d) {
    var t = d.querySelector("title");
    d.addEventListener("mouseenter", function () { tip.textContent = t ? t.textContent : ""; tip.hidden = false; });
    d.addEventListener("mousemove", function (e) {
      tip.style.left = (e.clientX + 12) + "px"; tip.style.top = (e.clientY + 12) + "px";
    });
    d.addEventListener("mouseleave", function () { tip.hidden = true; });
  });

  // ---------------------------------------------------------------- drill-down
  function panel(title) {
    var p = el(null, "div", { "class": "panel" });
    p.appendChild(el(null, "h3", {}, title));
    return p;
  }
  function svgBox(w, h, label) { return el(SVG, "svg", { width: w, height: h, viewBox: "0 0 " + w + " " + h,
                                                         role: "img", "aria-label": label }); }

  function confusion(cm, classes) {
    var p = panel("Confusion matrix"), k = classes.length, c = 48, left = 100, top = 70;
    var s = svgBox(left + c * k + 10, top + c * k + 40, "confusion matrix");
    s.setAttribute("class", "confusion");
    for (var i = 0; i < k; i++) {
      var tot = cm[i].reduce(function (a, b) { return a + b; }, 0);
      s.appendChild(el(SVG, "text", { x: left - 6, y: top + c * i + c / 2 + 4, "class": "lab" }, classes[i]));
      for (var j = 0; j < k; j++) {
        var f = tot ? cm[i][j] / tot : 0;
        var r = el(SVG, "rect", { x: left + c * j, y: top + c * i, width: c - 1, height: c - 1,
                                  fill: "rgba(1,115,178," + (0.08 + 0.85 * f).toFixed(3) + ")", "class": "cm" });
        r.appendChild(el(SVG, "title", {}, "true " + classes[i] + ", predicted " + classes[j] + ": " + cm[i][j] +
                                           " (" + (100 * f).toFixed(0) + "% of the row)"));
        s.appendChild(r);
        s.appendChild(el(SVG, "text", { x: left + c * j + c / 2, y: top + c * i + c / 2 + 4, "class": "tick cm-n",
                                        style: "fill:" + (f > 0.55 ? "#fff" : "#111") }, cm[i][j]));
      }
    }
    for (var jj = 0; jj < k; jj++) {
      var cx = left + c * jj + c / 2;  // column labels slanted, so long class names do not collide
      s.appendChild(el(SVG, "text", { x: cx, y: top - 8, "class": "lab", transform: "rotate(-40 " + cx + " " + (top - 8) + ")",
                                      style: "text-anchor:start" }, classes[jj]));
    }
    s.appendChild(el(SVG, "text", { x: left + c * k / 2, y: top + c * k + 24, "class": "tick" }, "predicted"));
    p.appendChild(s);
    p.appendChild(el(null, "p", { "class": "muted" }, "Counts summed over seeds; shade: share of the true class's row."));
    return p;
  }

  function scatter(rowsXY, opts) {  // rowsXY: [[label, x, y]]; the diagonal y = x
    var w = 300, h = 300, m = 40, s = svgBox(w, h, opts.label);
    function X(v) { return m + v * (w - m - 10); }
    function Y(v) { return h - m - v * (h - m - 10); }
    s.appendChild(el(SVG, "line", { x1: X(0), y1: Y(0), x2: X(1), y2: Y(1), "class": "grid", style: "stroke:#bbb" }));
    s.appendChild(el(SVG, "line", { x1: X(0), y1: Y(0), x2: X(1), y2: Y(0), "class": "ax" }));
    s.appendChild(el(SVG, "line", { x1: X(0), y1: Y(0), x2: X(0), y2: Y(1), "class": "ax" }));
    [0, 0.5, 1].forEach(function (t) {
      s.appendChild(el(SVG, "text", { x: X(t), y: h - m + 14, "class": "tick" }, t));
      s.appendChild(el(SVG, "text", { x: m - 6, y: Y(t) + 4, "class": "lab" }, t));
    });
    s.appendChild(el(SVG, "text", { x: X(0.5), y: h - 6, "class": "tick" }, opts.x));
    s.appendChild(el(SVG, "text", { x: 12, y: Y(0.5), "class": "tick", transform: "rotate(-90 12 " + Y(0.5) + ")" }, opts.y));
    rowsXY.forEach(function (r) {
      var d = el(SVG, "circle", { cx: X(r[1]), cy: Y(r[2]), r: 4, fill: "#de8f05", "class": "dot subj" });
      d.appendChild(el(SVG, "title", {}, r[0] + ": " + opts.x + " " + fmt(r[1]) + ", " + opts.y + " " + fmt(r[2])));
      s.appendChild(d);
    });
    return s;
  }

  function subjects(sub, cell) {
    var p = panel("Per-subject accuracy against the baseline");
    if (!sub.baseline) {
      p.appendChild(el(null, "p", { "class": "muted" }, cell.baseline ? "This is the baseline cell." :
                                                      "No baseline cell for this model."));
    } else {
      var pts = sub.rows.filter(function (r) { return r[3] !== null; }).map(function (r) { return [r[0], r[3], r[1]]; });
      p.appendChild(scatter(pts, { label: "per-subject accuracy", x: "baseline", y: "this cell" }));
      p.appendChild(el(null, "p", { "class": "muted" }, "One dot per subject (mean over seeds); above the diagonal: " +
                                     "this cell is more accurate on that subject than " + sub.baseline + "."));
    }
    var t = el(null, "table", { "class": "subjects" }), hr = el(null, "tr");
    var cols = sub.baseline ? [1, 2, 3, 4] : [1, 2];
    ["Subject", "Accuracy", "UF1", "Baseline accuracy", "Baseline UF1"].slice(0, cols.length + 1).forEach(function (h) {
      hr.appendChild(el(null, "th", {}, h));
    });
    t.appendChild(el(null, "thead")).appendChild(hr);
    var tb = t.appendChild(el(null, "tbody"));
    sub.rows.forEach(function (r) {
      var tr = tb.appendChild(el(null, "tr"));
      tr.appendChild(el(null, "td", { "class": "l" }, r[0]));
      cols.forEach(function (i) { tr.appendChild(el(null, "td", { "class": "r" }, fmt(r[i]))); });
    });
    p.appendChild(t);
    return p;
  }

  function curve(cv) {
    var p = panel("Learning curve"), names = Object.keys(cv);
    if (!names.length) {
      p.appendChild(el(null, "p", { "class": "muted" }, "No training history was recorded for this cell's units."));
      return p;
    }
    var colors = ["#0173b2", "#de8f05", "#029e73"];
    names.forEach(function (name, ci) {
      var pts = cv[name], w = 300, h = 180, m = 36;
      var xs = pts.map(function (q) { return q[0]; }), ys = pts.map(function (q) { return q[1]; });
      var x0 = Math.min.apply(null, xs), x1 = Math.max.apply(null, xs);
      var y0 = Math.min.apply(null, ys), y1 = Math.max.apply(null, ys);
      if (y1 === y0) { y1 = y0 + 1; }
      function X(v) { return m + (x1 === x0 ? 0.5 : (v - x0) / (x1 - x0)) * (w - m - 10); }
      function Y(v) { return h - 24 - (v - y0) / (y1 - y0) * (h - 46); }
      var s = svgBox(w, h, name);
      s.setAttribute("class", "curve");
      s.appendChild(el(SVG, "line", { x1: m, y1: h - 24, x2: w - 10, y2: h - 24, "class": "ax" }));
      s.appendChild(el(SVG, "polyline", { points: pts.map(function (q) { return X(q[0]).toFixed(1) + "," + Y(q[1]).toFixed(1); }).join(" "),
                                          fill: "none", stroke: colors[ci % 3], "stroke-width": 1.6 }));
      s.appendChild(el(SVG, "text", { x: w / 2, y: 12, "class": "tick" }, name + " (epochs " + x0 + "–" + x1 + ")"));
      s.appendChild(el(SVG, "text", { x: m - 4, y: Y(y1) + 4, "class": "lab" }, fmt(y1)));
      s.appendChild(el(SVG, "text", { x: m - 4, y: Y(y0) + 4, "class": "lab" }, fmt(y0)));
      p.appendChild(s);
    });
    p.appendChild(el(null, "p", { "class": "muted" }, "Mean over folds per seed, then over seeds."));
    return p;
  }

  function recipe(rec) {
    var p = panel("Recipe");
    var t = el(null, "table", { "class": "recipe" }), tb = t.appendChild(el(null, "tbody"));
    rec.forEach(function (kv) {
      var tr = tb.appendChild(el(null, "tr"));
      tr.appendChild(el(null, "th", { "class": "l" }, kv[0]));
      tr.appendChild(el(null, "td", { "class": "l" }, kv[1]));
    });
    if (!rec.length) { p.appendChild(el(null, "p", { "class": "muted" }, "The cell's units recorded no settings.")); }
    p.appendChild(t);
    return p;
  }

  function openCell(id) {
    var cell = DATA.cells[id], d = DATA.drill[String(id)], body = document.getElementById("drill-body");
    body.textContent = "";
    body.dataset.cell = id;
    body.appendChild(el(null, "h3", { id: "drill-title" }, cell.rep_name + " × " + cell.model_name + " — " + cell.setting));
    body.appendChild(el(null, "p", {}, "UF1 " + cell.uf1_text + " " + cell.uf1_ci + "; UAR " + cell.uar_text + " " +
                                       cell.uar_ci + "; accuracy " + cell.acc_text + " " + cell.acc_ci + "; " +
                                       cell.n_seeds + " seed(s)" + (cell.verdict ? "; verdict: " + cell.verdict +
                                       " (ΔUF1 " + cell.duf1_text + ")" : cell.baseline ? "; the baseline" : "") + "."));
    var panels = body.appendChild(el(null, "div", { "class": "panels" }));
    panels.appendChild(confusion(d.confusion, DATA.classes));
    panels.appendChild(subjects(d.subjects, cell));
    panels.appendChild(curve(d.curve));
    panels.appendChild(recipe(d.recipe));
    document.getElementById("drill-hint").hidden = true;
    rows.forEach(function (r) { r.classList.toggle("current", r.dataset.cell === String(id)); });
  }
  tbody.addEventListener("click", function (e) {
    var b = e.target.closest("button.open");
    if (b) { openCell(+b.dataset.cell); document.getElementById("drill").scrollIntoView(); }
  });
  var m = /^#cell-(\d+)$/.exec(window.location.hash);
  if (m && DATA.cells[+m[1]]) { openCell(+m[1]); }
})();
