// The local web chat: pick a person, chat as them. Everything shown comes from the server's
// conversation log, line by line, over one WebSocket; sending is plain POSTs with an id made
// here, so a resend after a network error is handled once.
"use strict";

const ROLES = {
  worker: "员工", owner: "整改责任人", reviewer: "复查人", safety_manager: "安全管理员",
  principal: "主要负责人", commander: "值班长", responder: "应急响应人", admin: "管理员",
};
const $ = (id) => document.getElementById(id);
const chat = {
  user: "", socket: null, retry: 0, maxUpload: 0, maxText: 2000, settleMs: 10000,
  seen: new Map(),   // line id -> when it arrived: a line can arrive after a higher id (see render)
};

function newId() {
  const bytes = crypto.getRandomValues(new Uint8Array(16));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

function el(tag, className, text) {
  const node = document.createElement(tag);
  if (className) node.className = className;
  if (text !== undefined) node.textContent = text;
  return node;
}

function escapeHtml(text) {
  return text.replace(/[&<>"']/g, (c) => (
    { "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" }[c]));
}

// WeCom's markdown subset, rendered from escaped text so nothing in it can become markup.
function renderMarkdown(source) {
  return source.split("\n").map((raw) => {
    const quote = /^>\s?/.test(raw);
    const heading = /^#{1,6}\s/.test(raw);
    const html = escapeHtml(raw.replace(/^>\s?/, "").replace(/^#{1,6}\s/, ""))
      .replace(/\*\*(.+?)\*\*/g, "<strong>$1</strong>")
      .replace(/`([^`]+)`/g, "<code>$1</code>")
      .replace(/\[([^\]]+)\]\((https?:\/\/[^\s)]+)\)/g,
        '<a href="$2" target="_blank" rel="noopener noreferrer">$1</a>')
      .replace(/&lt;font color=&quot;(info|comment|warning)&quot;&gt;(.*?)&lt;\/font&gt;/g,
        '<span class="font-$1">$2</span>');
    const body = heading ? `<strong>${html}</strong>` : html || "&nbsp;";
    return quote ? `<div class="md-quote">${body}</div>` : `<div>${body}</div>`;
  }).join("");
}

function showError(message) {
  const box = $("error");
  box.textContent = message;
  box.hidden = !message;
}

// ---------------------------------------------------------------------------------------------
// Rendering the log

// A photo or file is served only to a person whose conversation shows it, so its address
// names who is asking.
function mediaUrl(media, filename) {
  const name = filename === undefined ? "" : `/${encodeURIComponent(filename)}`;
  return `/chat/media/${media}${name}?${new URLSearchParams({ user: chat.user })}`;
}

function imageNode(media) {
  const img = el("img");
  img.src = mediaUrl(media);
  img.alt = "照片";
  img.onerror = () => img.replaceWith(el("span", "file", "（文件，无法预览）"));
  return img;
}

// A document (a report's ledger): a link that saves it under its own name.
function fileNode(file) {
  const link = el("a", "download", `📎 ${file.filename}`);
  link.href = mediaUrl(file.media, file.filename);
  link.download = file.filename;
  return link;
}

function cardNode(line) {
  const card = line.payload;
  const node = el("div", "line bot card");
  node.dataset.taskId = line.task_id;
  node.dataset.code = line.response_code;
  node.append(el("div", "card-source", "安全助手"), el("div", "card-title", card.title));
  if (card.description) node.append(el("div", "card-desc", card.description));
  if (card.fields.length) {
    const list = el("dl", "card-fields");
    for (const [name, value] of card.fields) list.append(el("dt", "", name), el("dd", "", value));
    node.append(list);
  }
  if (card.body) node.append(el("div", "card-body", card.body));
  let select = null;
  if (card.selection) {
    const label = el("label", "card-select", card.selection.title);
    select = el("select");
    select.dataset.key = card.selection.key;
    for (const [id, text] of card.selection.options) {
      const option = el("option", "", text);
      option.value = id;
      option.selected = id === card.selection.selected;
      select.append(option);
    }
    label.append(select);
    node.append(label);
  }
  const buttons = el("div", "card-buttons");
  for (const button of card.buttons) {
    const b = el("button", `style-${button.style}`, button.text);
    b.type = "button";
    b.dataset.key = button.key;
    b.onclick = () => clickCard(node, button.key, select);
    buttons.append(b);
  }
  node.append(buttons, el("div", "card-note"));
  return node;
}

function closeCards(taskId, note) {
  for (const card of document.querySelectorAll(".card")) {
    if (card.dataset.taskId !== taskId) continue;
    card.classList.add("done");
    card.querySelector(".card-note").textContent = note;
    for (const b of card.querySelectorAll("button")) b.disabled = true;
  }
}

function render(line) {
  const p = line.payload;
  if (line.kind === "card_update") return closeCards(p.task_id, p.replace_text);
  let node;
  if (line.kind === "card") {
    node = cardNode(line);
  } else {
    node = el("div", `line ${line.from_bot ? "bot" : "me"}`);
    if (line.kind === "image") node.append(imageNode(p.media));
    else if (line.kind === "file") node.append(fileNode(p));
    else if (line.kind === "markdown") node.innerHTML = renderMarkdown(p.content);
    else { node.classList.add("text"); node.textContent = p.content; }   // keeps its line breaks
    if (p.chat) {   // a group chat's message: the page shows it in each member's conversation
      node.classList.add("group");
      node.prepend(el("div", "line-chat", `群聊「${p.chat}」`));
    }
  }
  node.dataset.line = line.id;
  const box = $("messages");
  const atBottom = box.scrollHeight - box.scrollTop - box.clientHeight < 40;
  // Ids are not commit order, so a line may come after one with a higher id: put it in its place.
  let next = null;
  for (let n = box.lastElementChild; n && n.dataset.line && +n.dataset.line > line.id;
    n = n.previousElementSibling) next = n;
  box.insertBefore(node, next);
  if (atBottom || !line.from_bot) box.scrollTop = box.scrollHeight;
}

// ---------------------------------------------------------------------------------------------
// The live socket: history first, then each new line; reconnects and catches up after a drop

function setStatus(state, text) {
  const status = $("status");
  status.dataset.state = state;
  status.textContent = text;
}

// Where a new socket starts: after the last line that arrived long enough ago that nothing with a
// lower id can still be on its way (the server holds its own cursor back the same way).
function settledId() {
  const now = Date.now();
  let settled = 0;
  for (const [id, at] of chat.seen) if (now - at >= chat.settleMs && id > settled) settled = id;
  return settled;
}

function connect() {
  const user = chat.user;
  const scheme = location.protocol === "https:" ? "wss" : "ws";
  const query = new URLSearchParams({ user, after: String(settledId()) });
  const socket = new WebSocket(`${scheme}://${location.host}/chat/ws?${query}`);
  chat.socket = socket;
  socket.onopen = () => { chat.retry = 0; setStatus("open", "已连接"); };
  socket.onmessage = (message) => {
    const line = JSON.parse(message.data);
    if (chat.seen.has(line.id)) return;   // sent again after a reconnect
    chat.seen.set(line.id, Date.now());
    render(line);
  };
  socket.onclose = () => {
    if (chat.socket !== socket) return;   // replaced on purpose: another person was picked
    setStatus("lost", "连接中断，正在重新连接…");
    const wait = Math.min(500 * 2 ** chat.retry++, 10000);
    setTimeout(() => { if (chat.socket === socket) connect(); }, wait);
  };
}

function pick(user) {
  if (chat.socket) { const old = chat.socket; chat.socket = null; old.close(); }
  chat.user = user;
  chat.seen.clear();
  $("messages").replaceChildren();
  showError("");
  $("text").disabled = $("send").disabled = !user;
  history.replaceState(null, "", user ? `#${encodeURIComponent(user)}` : "#");
  if (!user) { setStatus("idle", "未连接"); return; }
  setStatus("connecting", "连接中…");
  connect();
  $("text").focus();
}

// ---------------------------------------------------------------------------------------------
// Sending: the same id on every try, so the server handles a resent message once

// What to tell the person about a refused request: the server's sentence when it sent one
// (every /chat/api failure is {"error": "..."}), else the status.
async function failure(response, what) {
  const answer = await response.json().catch(() => ({}));
  return answer.error || `${what}（${response.status}），请稍后再试。`;
}

async function post(path, body) {
  for (let attempt = 0; ; attempt++) {
    let response;
    try {
      response = await fetch(path, { method: "POST", body });
    } catch (err) {
      if (attempt >= 2) { showError("网络不通，消息没有发出，请稍后再试。"); return false; }
      await new Promise((resolve) => setTimeout(resolve, 1000 * (attempt + 1)));
      continue;
    }
    if (response.ok) { showError(""); return true; }
    showError(await failure(response, "发送失败"));
    return false;
  }
}

const asJson = (fields) => JSON.stringify({ user: chat.user, id: newId(), ...fields });

async function sendText(event) {
  event.preventDefault();
  const input = $("text");
  const text = input.value.trim();
  if (!text || !chat.user) return;
  if (text.length > chat.maxText) { showError(`消息太长了，请控制在 ${chat.maxText} 字以内。`); return; }
  input.value = "";
  if (!await post("/chat/api/text", asJson({ text }))) input.value = text;
}

async function sendPhoto() {
  const input = $("photo");
  const file = input.files[0];
  input.value = "";
  if (!file || !chat.user) return;
  if (chat.maxUpload && file.size > chat.maxUpload) {
    showError(`文件太大了，请上传不超过 ${Math.floor(chat.maxUpload / 1048576)} MB 的照片。`);
    return;
  }
  const form = new FormData();
  form.append("user", chat.user);
  form.append("id", newId());
  form.append("file", file);
  await post("/chat/api/photo", form);
}

async function clickCard(card, key, select) {
  const selected = select ? { [select.dataset.key]: [select.value] } : {};
  const buttons = card.querySelectorAll("button");
  for (const b of buttons) b.disabled = true;
  await post("/chat/api/click", asJson({ code: card.dataset.code, key, selected }));
  if (!card.classList.contains("done")) for (const b of buttons) b.disabled = false;
}

// ---------------------------------------------------------------------------------------------

async function loadPeople() {
  const response = await fetch("/chat/api/people");
  if (!response.ok) { showError(await failure(response, "无法读取人员名册")); return; }
  const answer = await response.json();
  chat.maxUpload = answer.max_upload;
  chat.maxText = answer.max_text;
  chat.settleMs = answer.settle_seconds * 1000;
  const select = $("person");
  for (const person of answer.people) {
    const roles = person.roles.map((r) => ROLES[r] || r).join("、");
    const option = el("option", "", `${person.name}（${person.id}）${roles ? "· " + roles : ""}`);
    option.value = person.id;
    select.append(option);
  }
  if (!answer.people.length) {
    $("hint").textContent = "名册中还没有人员，请先运行 safetybot load-org。";
  }
  const wanted = decodeURIComponent(location.hash.slice(1));
  if (wanted && answer.people.some((p) => p.id === wanted)) {
    select.value = wanted;
    pick(wanted);
  }
}

$("person").onchange = (event) => pick(event.target.value);
$("composer").onsubmit = sendText;
$("photo").onchange = sendPhoto;
loadPeople().catch(() => showError("无法读取人员名册，请确认服务已启动后刷新页面。"));
