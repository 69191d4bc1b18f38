// The dashboard's pages: the overview's charts, and its figures kept current by server-sent
// events (the page fetches its figures again when the server says something changed).
"use strict";

const charts = {};

function points(canvas) {
  return JSON.parse(canvas.dataset.points || "[]");
}

function drawChart(id, kind, data) {
  const canvas = document.getElementById(id);
  if (!canvas || typeof Chart === "undefined") return;
  const labels = data.map((p) => p[0]);
  const values = data.map((p) => p[1]);
  if (charts[id]) {
    charts[id].data.labels = labels;
    charts[id].data.datasets[0].data = values;
    charts[id].update();
    return;
  }
  charts[id] = new Chart(canvas, {
    type: kind,
    data: { labels, datasets: [{ data: values, label: "", borderWidth: 2,
      backgroundColor: kind === "line" ? "rgba(192, 57, 43, 0.15)" : "#2c6fbb",
      borderColor: kind === "line" ? "#c0392b" : "#2c6fbb", fill: kind === "line",
      maxBarThickness: 48 }] },
    options: { animation: false, responsive: true, maintainAspectRatio: false,
      plugins: { legend: { display: false } },
      scales: { y: { beginAtZero: true, ticks: { precision: 0 } } } },
  });
}

function share(value) {
  return value === null || value === undefined ? "—" : `${Math.round(value * 100)}%`;
}

function when(iso) {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function item(text, className, href) {
  const li = document.createElement("li");
  if (className) li.className = className;
  if (href) {
    const a = document.createElement("a");
    a.href = href;
    a.textContent = text[0];
    li.append(a, document.createTextNode(text[1]));
  } else {
    li.textContent = text;
  }
  return li;
}

function show(o) {
  const values = {
    open: o.open, overdue: o.overdue, closed_month: o.closed_month, major_open: o.major_open,
    closure: share(o.this_month.closure), closure_last: share(o.last_month.closure),
    punctual: share(o.this_month.punctual), punctual_last: share(o.last_month.punctual),
  };
  for (const [key, value] of Object.entries(values)) {
    const node = document.querySelector(`[data-key="${key}"]`);
    if (node) node.textContent = value;
  }
  drawChart("major-trend", "line", o.major_trend);
  drawChart("by-area", "bar", o.by_area);
  drawChart("by-category", "bar", o.by_category);
  const escalations = document.getElementById("escalations");
  if (escalations) {
    escalations.replaceChildren(...(o.escalations.length ? o.escalations.map((e) => item(
      [e.number, ` 第${e.level}级超期督办 · ${e.owner} · ${when(e.fired_at)}`], "",
      `/dashboard/tickets/${e.ticket}`)) : [item("近7天没有超期督办", "none")]));
  }
  const emergency = document.getElementById("emergency");
  if (emergency) {
    const heading = emergency.querySelector("h2");
    const parts = [heading];
    if (o.emergency) {
      const e = o.emergency;
      const head = document.createElement("p");
      head.className = "active";
      head.textContent = `${e.label} ${e.plan} ${e.level} · ${e.area} · ${when(e.since)} 启动`;
      const board = document.createElement("ul");
      board.className = "board";
      board.replaceChildren(...e.board.map((r) => item(
        `${r.name} · ${r.answer}${r.at ? " · " + when(r.at) : ""}`,
        r.answer === "收到" ? "ok" : r.answer === "无法到场" ? "no" : "wait")));
      parts.push(head, board);
    } else {
      const none = document.createElement("p");
      none.className = "none";
      none.textContent = "当前没有进行中的应急响应";
      parts.push(none);
    }
    emergency.replaceChildren(...parts);
  }
  document.body.dataset.updated = String(Date.now());
}

function live() {
  const figures = document.getElementById("figures");
  if (!figures) return;
  drawChart("major-trend", "line", points(document.getElementById("major-trend")));
  drawChart("by-area", "bar", points(document.getElementById("by-area")));
  drawChart("by-category", "bar", points(document.getElementById("by-category")));
  const source = new EventSource(figures.dataset.live);
  source.addEventListener("change", async () => {
    const answer = await fetch(figures.dataset.source, { credentials: "same-origin" });
    if (answer.ok) show(await answer.json());
  });
  source.addEventListener("open", () => { document.body.dataset.live = "open"; });
}

document.addEventListener("DOMContentLoaded", live);
