// The risk map: an area's panel (its open tickets, last inspection and the rule behind its
// status) on hover, focus or tap, from /dashboard/api/map; fetched again when the server says
// something changed.
"use strict";

const mapState = { areas: new Map(), inspection: false, shown: "" };

function mapWhen(iso) {
  if (!iso) return "—";
  const d = new Date(iso);
  const pad = (n) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())} ${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

function node(tag, text, className) {
  const el = document.createElement(tag);
  if (text !== undefined && text !== null) el.textContent = text;
  if (className) el.className = className;
  return el;
}

function fact(list, term, value) {
  list.append(node("dt", term), node("dd", value));
}

function showArea(code) {
  const a = mapState.areas.get(code);
  const panel = document.getElementById("area-panel");
  if (!a || !panel) return;
  mapState.shown = code;
  for (const g of document.querySelectorAll("g.area")) {
    g.classList.toggle("chosen", g.dataset.code === code);
  }
  const facts = node("dl", null, "facts");
  fact(facts, "动态风险状态", a.status_label + (a.reason ? `（${a.reason}）` : ""));
  fact(facts, "评定时间", mapWhen(a.status_at));
  fact(facts, "固有风险", `${a.inherent}色`);
  fact(facts, "未闭环隐患", `${a.open} 条` + (a.major ? `，重大 ${a.major}` : "")
    + (a.overdue ? `，超期 ${a.overdue}` : ""));
  if (mapState.inspection) {
    const v = a.last_inspection;
    fact(facts, "最近巡检", v ? `${mapWhen(v.at)} · ${v.name} · ${v.by}`
      + (v.finished ? "" : "（检查表未完成）") : "暂无巡检记录");
  }
  const tickets = node("ul", null, "area-tickets");
  for (const t of a.tickets) {
    const li = node("li", null, t.overdue ? "overdue" : "");
    const link = node("a", t.number);
    link.href = t.href;
    li.append(link, document.createTextNode(` ${t.grade} · ${t.description}`));
    if (t.overdue) li.append(document.createTextNode(" · 已超期"));
    tickets.append(li);
  }
  if (!a.tickets.length) tickets.append(node("li", "没有您可查看的未闭环隐患", "none"));
  else if (a.open > a.tickets.length) {
    tickets.append(node("li", `另有 ${a.open - a.tickets.length} 条未列出`, "none"));
  }
  panel.replaceChildren(node("h2", `${a.name}（${a.code}）`), facts, node("h3", "未闭环隐患"),
    tickets);
}

function applyData(data) {
  mapState.inspection = data.inspection;
  mapState.areas = new Map(data.areas.map((a) => [a.code, a]));
  for (const span of document.querySelectorAll("tspan.open-count")) {
    const a = mapState.areas.get(span.dataset.code);
    span.textContent = a && a.open ? ` · ${a.open}` : "";
  }
  if (mapState.shown) showArea(mapState.shown);
  document.body.dataset.mapLoaded = String(Date.now());
}

async function loadMap(source) {
  const answer = await fetch(source, { credentials: "same-origin" });
  if (answer.ok) applyData(await answer.json());
}

function startMap() {
  const plan = document.getElementById("plan");
  if (!plan) return;
  for (const g of document.querySelectorAll("g.area")) {
    const open = () => showArea(g.dataset.code);
    g.addEventListener("mouseenter", open);
    g.addEventListener("focus", open);
    g.addEventListener("click", open);
    g.addEventListener("keydown", (e) => { if (e.key === "Enter" || e.key === " ") open(); });
  }
  loadMap(plan.dataset.source);
  if (plan.dataset.live && typeof EventSource !== "undefined") {
    const source = new EventSource(plan.dataset.live);
    source.addEventListener("change", () => loadMap(plan.dataset.source));
  }
}

document.addEventListener("DOMContentLoaded", startMap);
