// pumpops dashboard: the live stream turns into htmx triggers; the pump page's charts (uPlot).
(function () {
  "use strict";
  var body = document.body;
  var url = body.getAttribute("data-live");
  var badge = document.getElementById("live");
  if (url && window.EventSource) {
    var source = new EventSource(url);
    source.onopen = function () { if (badge) { badge.textContent = "live"; badge.className = "live on"; } };
    source.onerror = function () { if (badge) { badge.textContent = "reconnecting"; badge.className = "live"; } };
    ["alarm", "state", "rollout", "fleet", "model", "release", "retrain"].forEach(function (name) {
      source.addEventListener(name, function (e) {
        htmx.trigger(body, "pumpops-" + name, { data: e.data });
      });
    });
  }

  var holder = document.getElementById("charts");
  var data = document.getElementById("chart-data");
  if (!holder || !data || !window.uPlot) { return; }
  var charts = JSON.parse(data.textContent);
  var width = Math.max(320, holder.clientWidth - 20);

  function bands(periods) {
    return {
      hooks: {
        drawClear: [function (u) {
          var ctx = u.ctx;
          ctx.save();
          ctx.fillStyle = "rgba(220, 40, 40, 0.15)";
          periods.forEach(function (p) {
            var x0 = u.valToPos(p[0], "x", true), x1 = u.valToPos(p[1], "x", true);
            ctx.fillRect(x0, u.bbox.top, Math.max(2, x1 - x0), u.bbox.height);
          });
          ctx.restore();
        }]
      }
    };
  }

  function chart(title, xs, series, names, colours) {
    var div = document.createElement("div");
    div.className = "chart";
    holder.appendChild(div);
    var opts = {
      title: title, width: width, height: 180,
      cursor: { drag: { x: true, y: false } },
      plugins: [bands(charts.alarms)],
      series: [{}].concat(names.map(function (n, i) { return { label: n, stroke: colours[i], width: 1, spanGaps: false }; })),
      axes: [{}, { size: 95 }]
    };
    return new uPlot(opts, [xs].concat(series), div);
  }

  var score = charts.score;
  if (score.ts.length) {
    chart("anomaly score against threshold", score.ts, [score.p95, score.max, score.threshold],
      ["p95", "max", "threshold"], ["#1f77b4", "#9467bd", "#d62728"]);
  }
  charts.sensors.forEach(function (s) {
    chart(s.sensor + (s.unit ? " [" + s.unit + "]" : ""), s.ts, [s.values], [s.sensor + " " + s.unit], ["#2a7"]);
  });
  if (!score.ts.length && !charts.sensors.length) {
    holder.textContent = "no readings or score summaries stored in the last 24 h";
  }
})();
