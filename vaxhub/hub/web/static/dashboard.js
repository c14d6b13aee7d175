// The dashboard's charts (Chart.js, served by the hub), drawn from the
// figures of GET /dashboard/data with the page's own filter.
(function () {
  "use strict";
  var script = document.currentScript;
  var labels = JSON.parse(document.getElementById("chart-labels").textContent);
  var number = new Intl.NumberFormat(labels.locale);
  var percent = new Intl.NumberFormat(labels.locale, { style: "percent", maximumFractionDigits: 1 });
  var day = new Intl.DateTimeFormat(labels.locale, { day: "numeric", month: "numeric", year: "numeric", timeZone: "UTC" });
  function dayLabel(iso) { return day.format(new Date(iso + "T00:00:00Z")); }
  var colours = { blue: "#0b5cad", green: "#137a3a", yellow: "#e0a800", red: "#b3261e", grey: "#8a94a3", teal: "#1b8a8f" };
  var statusColour = { verified: colours.green, consistent: colours.green, mismatch: colours.red, not_found: colours.yellow,
    unverifiable: colours.grey, not_enrolled: colours.yellow, skipped: colours.grey, error: colours.grey };
  window.vaxhubCharts = [];

  function chart(id, config) {
    var canvas = document.getElementById(id);
    config.options = Object.assign({ responsive: true, maintainAspectRatio: false, animation: false, locale: labels.locale }, config.options || {});
    var made = new window.Chart(canvas, config);
    window.vaxhubCharts.push({ id: id, total: config.data.datasets.reduce(function (sum, d) {
      return sum + d.data.reduce(function (a, b) { return a + (typeof b === "number" ? b : 0); }, 0);
    }, 0) });
    return made;
  }

  function asPercent(axis) {
    return { ticks: { callback: function (v) { return percent.format(v); } }, min: 0, max: 1, beginAtZero: true };
  }

  function draw(f) {
    chart("chart-doses", {
      type: "bar",
      data: { labels: f.doses_per_day.map(function (d) { return dayLabel(d.day); }),
              datasets: [{ label: labels.doses, data: f.doses_per_day.map(function (d) { return d.doses; }), backgroundColor: colours.blue }] },
      options: { plugins: { legend: { display: false } }, scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    chart("chart-dose-number", {
      type: "bar",
      data: { labels: f.coverage.by_dose.map(function (d) { return labels.dose.replace("{n}", d.dose); }),
              datasets: [{ label: labels.people, data: f.coverage.by_dose.map(function (d) { return d.share || 0; }),
                           backgroundColor: [colours.yellow, colours.green, colours.teal] }] },
      options: { indexAxis: "y", plugins: { legend: { display: false },
                 tooltip: { callbacks: { label: function (c) { return percent.format(c.raw) + " (" + number.format(f.coverage.by_dose[c.dataIndex].people) + ")"; } } } },
                 scales: { x: asPercent() } }
    });
    var provinces = f.coverage.by_province;
    chart("chart-provinces", {
      type: "bar",
      data: { labels: provinces.map(function (p) { return p.name || labels.unknown; }),
              datasets: [
                { label: labels.atLeast1, data: provinces.map(function (p) { return p.dose1_share || 0; }), backgroundColor: colours.yellow },
                { label: labels.atLeast2, data: provinces.map(function (p) { return p.dose2_share || 0; }), backgroundColor: colours.green },
                { label: labels.atLeast3, data: provinces.map(function (p) { return p.dose3_share || 0; }), backgroundColor: colours.teal }] },
      options: { indexAxis: "y", scales: { x: asPercent() } }
    });
    var registries = [["population-registry", labels.populationRegistry], ["social-insurance", labels.socialInsurance]];
    var statuses = {};
    registries.forEach(function (r) { Object.keys(f.verification.by_registry[r[0]] || {}).forEach(function (s) { statuses[s] = true; }); });
    chart("chart-registries", {
      type: "bar",
      data: { labels: registries.map(function (r) { return r[1]; }),
              datasets: Object.keys(statuses).map(function (s) {
                return { label: labels.status[s] || s, backgroundColor: statusColour[s] || colours.grey,
                         data: registries.map(function (r) { return (f.verification.by_registry[r[0]] || {})[s] || 0; }) };
              }) },
      options: { indexAxis: "y", scales: { x: { stacked: true, beginAtZero: true, ticks: { precision: 0 } }, y: { stacked: true } } }
    });
    var sites = f.verification.by_site.slice(0, 20);
    function share(field) { return sites.map(function (s) { return s.checked ? s[field] / s.checked : 0; }); }
    chart("chart-sites", {
      type: "bar",
      data: { labels: sites.map(function (s) { return s.name || labels.unknown; }),
              datasets: [{ label: labels.mismatch, data: share("mismatch"), backgroundColor: colours.red },
                         { label: labels.notFound, data: share("not_found"), backgroundColor: colours.yellow }] },
      options: { indexAxis: "y", scales: { x: Object.assign(asPercent(), { stacked: true, max: undefined, suggestedMax: 0.1 }), y: { stacked: true } },
                 plugins: { tooltip: { callbacks: { label: function (c) { return c.dataset.label + ": " + percent.format(c.raw); } } } } }
    });
    var b = f.backlog;
    chart("chart-backlog", {
      type: "bar",
      data: { labels: [labels.corrections, labels.reviews, labels.queued, labels.dead, labels.reactions],
              datasets: [{ label: labels.people, data: [b.corrections, b.reviews, b.verification_pending, b.verification_dead, b.reactions],
                           backgroundColor: [colours.blue, colours.yellow, colours.grey, colours.red, colours.teal] }] },
      options: { indexAxis: "y", plugins: { legend: { display: false } }, scales: { x: { beginAtZero: true, ticks: { precision: 0 } } } }
    });
    document.body.dataset.chartsReady = "true";
  }

  fetch(script.dataset.url, { credentials: "same-origin", headers: { Accept: "application/json" } })
    .then(function (r) { if (!r.ok) { throw new Error("HTTP " + r.status); } return r.json(); })
    .then(draw)
    .catch(function (e) { document.body.dataset.chartsReady = "failed: " + e.message; });
})();
