// The curator's page: collections at a glance, a collection's series, and a series viewed
// slice by slice with its header, inventory, findings and review buttons. Plain ES module,
// no build step; it talks to the same origin's API with the token from the login form.

const main = document.getElementById("main");
const crumbs = document.getElementById("crumbs");
const who = document.getElementById("who");
const STATES = ["Visible", "Not Visible", "To Be Deleted", "Not Reviewed"];

const token = () => sessionStorage.getItem("imarc.token");

function esc(text) {
  const d = document.createElement("div");
  d.textContent = text == null ? "" : String(text);
  return d.innerHTML;
}

function toast(message) {
  const t = document.getElementById("toast");
  t.textContent = message;
  t.style.display = "block";
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => (t.style.display = "none"), 5000);
}

async function api(path, options = {}) {
  const headers = { ...(options.headers || {}) };
  if (token()) headers.Authorization = `Bearer ${token()}`;
  if (options.json !== undefined) {
    headers["Content-Type"] = "application/json";
    options.body = JSON.stringify(options.json);
  }
  const r = await fetch(path, { ...options, headers });
  if (r.status === 401) {
    sessionStorage.removeItem("imarc.token");
    location.hash = "#/login";
    throw new Error("please log in again");
  }
  if (!r.ok) {
    let detail = r.statusText;
    try { detail = (await r.json()).detail || detail; } catch (_) { /* not JSON */ }
    throw new Error(typeof detail === "string" ? detail : JSON.stringify(detail));
  }
  return options.raw ? r : r.json();
}

function setCrumbs(parts) {
  crumbs.innerHTML = parts.map(([href, label]) => `<a href="${href}">${esc(label)}</a>`).join("› ");
}

// -- login --------------------------------------------------------------------------------

function showLogin() {
  setCrumbs([]);
  who.textContent = "";
  main.innerHTML = `
    <form class="login panel" id="login">
      <h2>Log in</h2>
      <input name="username" placeholder="user name" autocomplete="username" required>
      <input name="password" type="password" placeholder="password" autocomplete="current-password" required>
      <button class="primary" type="submit">Log in</button>
      <p class="muted" id="login-error"></p>
    </form>`;
  document.getElementById("login").addEventListener("submit", async (ev) => {
    ev.preventDefault();
    const form = new FormData(ev.target);
    const body = new URLSearchParams({
      grant_type: "password",
      username: form.get("username"),
      password: form.get("password"),
    });
    const r = await fetch("/api/auth/token", { method: "POST", body });
    const answer = await r.json().catch(() => ({}));
    if (!r.ok) {
      document.getElementById("login-error").textContent =
        answer.error_description || answer.detail || "the user name or password is wrong";
      return;
    }
    sessionStorage.setItem("imarc.token", answer.access_token);
    sessionStorage.setItem("imarc.user", form.get("username"));
    location.hash = "#/";
  });
}

// -- collections at a glance --------------------------------------------------------------

async function showCollections() {
  setCrumbs([["#/", "Collections"]]);
  const rows = await api("/api/qc/collections");
  main.innerHTML = `
    <h2>Submission status at a glance</h2>
    <table id="collections"><thead><tr>
      <th>Collection</th><th>Status</th><th>Priority</th><th>Received</th><th>Held</th>
      <th>De-identified</th><th>Awaiting review</th><th>Published</th><th>Flagged series</th>
      <th>Published → public (patients / studies / series / images)</th><th>Held by reason</th></tr></thead>
    <tbody>${rows.map((c) => `<tr>
      <td><a href="#/c/${encodeURIComponent(c.collection)}">${esc(c.collection)}</a></td>
      <td>${esc(c.status)}</td><td class="num">${c.priority}</td>
      <td class="num">${c.received}</td><td class="num">${c.held}</td>
      <td class="num">${c.deidentified}</td><td class="num">${c.awaiting_review}</td>
      <td class="num">${c.published}</td>
      <td class="num ${c.flagged_series ? "flag" : ""}">${c.flagged_series}${c.face_suggestion ? ` <span class="flag" title="${esc(c.face_suggestion)}">face?</span>` : ""}</td>
      <td class="check ${c.public_check.state}" title="${publicCheckTitle(c)}">
        ${counts(c.published_counts)} → ${counts(c.public)} ${publicCheckMark(c.public_check)}</td>
      <td>${Object.entries(c.held_by_reason).map(([r, n]) => `${esc(r)}: ${n}`).join("<br>")}</td>
    </tr>`).join("")}</tbody></table>
    ${rows.length ? "" : `<p class="muted">No collection you curate has anything in curation yet.</p>`}`;
}

function counts(n) {
  return `${n.patients} / ${n.studies} / ${n.series} / ${n.instances}`;
}

function publicCheckMark(check) {
  if (check.state === "match") return "✔";
  if (check.state === "pending") return `<span class="muted">(${check.pending_series} series not indexed yet)</span>`;
  return `<span class="flag">✘ ${check.mismatched_series.length} series differ</span>`;
}

function publicCheckTitle(c) {
  const check = c.public_check;
  if (check.state !== "mismatch") return "what was published, and what the public catalog holds of it";
  return esc(`series whose public copy differs from curation: ${check.mismatched_series.join(", ")}`);
}

// -- one collection -----------------------------------------------------------------------

async function showCollection(name) {
  setCrumbs([["#/", "Collections"], [`#/c/${encodeURIComponent(name)}`, name]]);
  const [series, findings, held] = await Promise.all([
    api(`/api/qc/collections/${encodeURIComponent(name)}/series`),
    api(`/api/qc/collections/${encodeURIComponent(name)}/findings`),
    api(`/api/deid/collections/${encodeURIComponent(name)}/held`).catch(() => []),
  ]);
  const flagged = new Map();
  for (const f of findings) flagged.set(f.series_instance_uid, (flagged.get(f.series_instance_uid) || 0) + 1);
  const modalities = [...new Set(series.map((s) => s.modality))].sort();
  main.innerHTML = `
    <h2>${esc(name)}</h2>
    <div class="filters">
      <select id="f-state"><option value="">any state</option>${STATES.map((s) => `<option>${s}</option>`).join("")}</select>
      <select id="f-modality"><option value="">any modality</option>${modalities.map((m) => `<option>${esc(m)}</option>`).join("")}</select>
      <select id="f-flag"><option value="">flagged or not</option><option value="yes">with findings</option><option value="no">without findings</option></select>
      <span class="muted" id="f-count"></span>
      <span style="margin-left:auto"></span>
      <select id="bulk-state">${STATES.map((s) => `<option>${s}</option>`).join("")}</select>
      <button id="bulk">Set shown series</button>
      <button class="primary" id="publish">Publish Visible series</button>
    </div>
    <table id="series"><thead><tr><th>Series</th><th>Patient</th><th>Modality</th>
      <th>Instances</th><th>Awaiting</th><th>Published</th><th>Findings</th><th>Review</th></tr></thead><tbody></tbody></table>
    <h3>Held in de-identification</h3>
    <table id="held"><thead><tr><th>Instance</th><th>File</th><th>Reason</th><th></th></tr></thead>
    <tbody>${held.map((h) => `<tr><td>${esc(h.instance_id)}</td><td>${esc(h.filename || "")}</td>
      <td>${esc(h.reason)}${h.text_boxes ? ` <span class="${h.text_boxes.length ? "flag" : "muted"}">· OCR: ${h.text_boxes.length} text region(s)</span>` : ""}</td>
      <td>${h.code === "burned_in_phi" ? `<a class="button" href="#/h/${encodeURIComponent(name)}/${encodeURIComponent(h.instance_id)}">Review pixels</a> ` : ""}<button data-release="${esc(h.instance_id)}">Release</button></td></tr>`).join("")}</tbody></table>
    ${held.length ? "" : `<p class="muted">Nothing held.</p>`}`;
  const shown = () => {
    const st = document.getElementById("f-state").value;
    const mo = document.getElementById("f-modality").value;
    const fl = document.getElementById("f-flag").value;
    return series.filter((s) => (!st || s.review_state === st) && (!mo || s.modality === mo)
      && (!fl || (fl === "yes") === flagged.has(s.series_instance_uid)));
  };
  const render = () => {
    const list = shown();
    document.getElementById("f-count").textContent = `${list.length} of ${series.length} series`;
    document.querySelector("#series tbody").innerHTML = list.map((s) => `<tr>
      <td><a href="#/s/${encodeURIComponent(s.series_instance_uid)}">${esc(s.series_instance_uid)}</a></td>
      <td>${esc(s.patient_id)}</td><td>${esc(s.modality)}</td><td class="num">${s.instances}</td>
      <td class="num">${s.awaiting_review}</td><td class="num">${s.published}</td>
      <td class="num ${flagged.has(s.series_instance_uid) ? "flag" : ""}">${flagged.get(s.series_instance_uid) || 0}</td>
      <td class="state-${s.review_state.replace(/ /g, ".")}">${esc(s.review_state)}</td></tr>`).join("");
  };
  for (const id of ["f-state", "f-modality", "f-flag"]) document.getElementById(id).addEventListener("change", render);
  render();
  document.getElementById("bulk").addEventListener("click", async () => {
    const uids = shown().map((s) => s.series_instance_uid);
    const state = document.getElementById("bulk-state").value;
    const r = await api(`/api/qc/collections/${encodeURIComponent(name)}/review`, {
      method: "PUT", json: { state, series: uids, comment: "bulk change on the curation page" },
    });
    toast(`${r.series.length} series set to ${state}`);
    showCollection(name);
  });
  document.getElementById("publish").addEventListener("click", async () => {
    const visible = series.filter((s) => s.review_state === "Visible" && s.awaiting_review > 0);
    if (!visible.length) { toast("no Visible series waits to be published"); return; }
    try {
      const r = await api(`/api/qc/collections/${encodeURIComponent(name)}/publish`, {
        method: "POST", json: { series: visible.map((s) => s.series_instance_uid) },
      });
      toast(`published ${r.published.length} series (${r.instances} instances)`);
    } catch (e) { toast(e.message); }
    showCollection(name);
  });
  for (const b of document.querySelectorAll("[data-release]")) {
    b.addEventListener("click", async () => {
      try {
        await api(`/api/deid/collections/${encodeURIComponent(name)}/held/${b.dataset.release}/release`, { method: "POST" });
        toast("released: it is de-identified again");
      } catch (e) { toast(e.message); }
      showCollection(name);
    });
  }
}

// -- one series, slice by slice -----------------------------------------------------------

async function imageUrl(instanceId, frame) {
  const r = await api(`/api/qc/instances/${instanceId}/render?frame=${frame}`, { raw: true });
  return URL.createObjectURL(await r.blob());
}

async function showSeries(uid) {
  const s = await api(`/api/qc/series/${encodeURIComponent(uid)}`);
  setCrumbs([["#/", "Collections"], [`#/c/${encodeURIComponent(s.collection)}`, s.collection],
    [`#/s/${encodeURIComponent(uid)}`, `series …${uid.slice(-8)}`]]);
  const slices = s.slices.flatMap((i) => Array.from({ length: i.frames }, (_, f) => ({ ...i, frame: f })));
  main.innerHTML = `
    <h2>Series <span class="muted">${esc(uid)}</span></h2>
    <p>Patient ${esc(s.patient_id)} · ${esc(s.modality)} · ${s.instances} instances ·
      review: <b id="state" class="state-${s.review_state.replace(/ /g, ".")}">${esc(s.review_state)}</b>
      ${s.findings.length ? `· <span class="flag">${s.findings.length} residual-PHI finding(s)</span>` : ""}</p>
    <div class="controls">
      ${STATES.slice(0, 3).map((st) => `<button data-state="${st}">${st}</button>`).join("")}
      <input id="comment" placeholder="comment (kept in the history)" size="40">
    </div>
    <div class="row">
      <div>
        <div class="viewer" id="viewer"><img id="slice" alt="slice"></div>
        <div class="controls">
          <button id="play">▶ Play</button>
          <input type="range" id="slider" min="0" max="${Math.max(0, slices.length - 1)}" value="0">
          <span id="pos"></span>
          <button id="ocr">Find burned-in text</button>
        </div>
      </div>
      <div class="header-table panel"><table id="header"><thead><tr><th>Tag</th><th>Element</th><th>VR</th><th>Value</th></tr></thead><tbody></tbody></table></div>
    </div>
    <div class="panel"><h3>Residual-PHI findings</h3>
      ${s.findings.length ? `<table><tr><th>Instance</th><th>Element</th><th>Kind</th></tr>${s.findings.map((f) => `<tr><td>${esc(f.sop_instance_uid)}</td><td>${esc(f.path)}</td><td class="flag">${esc(f.kind)}</td></tr>`).join("")}</table>` : `<p class="muted">None.</p>`}</div>
    <div class="panel"><h3>History</h3>
      ${s.history.length ? `<table><tr><th>When</th><th>Who</th><th>State</th><th>Comment</th></tr>${s.history.map((h) => `<tr><td>${esc(h.at)}</td><td>${esc(h.by)}</td><td>${esc(h.state)}</td><td>${esc(h.comment)}</td></tr>`).join("")}</table>` : `<p class="muted">Not reviewed yet.</p>`}</div>
    <div class="panel"><h3>Inventory of this series</h3><table id="inventory"><thead><tr><th>Section</th><th>Element</th><th>VR</th><th>Value</th><th>Count</th></tr></thead><tbody></tbody></table></div>`;
  const img = document.getElementById("slice");
  const slider = document.getElementById("slider");
  let current = -1;
  let playing = null;
  async function show(i) {
    if (!slices.length) { document.getElementById("pos").textContent = "no slices"; return; }
    current = i;
    const sl = slices[i];
    for (const b of document.querySelectorAll(".box")) b.remove();
    const url = await imageUrl(sl.instance_id, sl.frame);
    if (current !== i) { URL.revokeObjectURL(url); return; }
    const old = img.src;
    img.src = url;
    if (old.startsWith("blob:")) URL.revokeObjectURL(old);
    document.getElementById("pos").textContent = `slice ${i + 1} / ${slices.length}` + (sl.instance_number != null ? ` · instance ${sl.instance_number}` : "");
    const header = await api(`/api/qc/instances/${sl.instance_id}/header`);
    document.querySelector("#header tbody").innerHTML = header.map((e) => `<tr>
      <td>${esc(e.tag)}</td><td style="padding-left:${0.5 + e.depth}rem">${esc(e.keyword)}</td><td>${esc(e.vr)}</td><td>${esc(e.value)}</td></tr>`).join("");
  }
  slider.addEventListener("input", () => show(Number(slider.value)));
  document.getElementById("play").addEventListener("click", (ev) => {
    if (playing) { clearInterval(playing); playing = null; ev.target.textContent = "▶ Play"; return; }
    ev.target.textContent = "❚❚ Pause";
    playing = setInterval(() => {
      slider.value = String((Number(slider.value) + 1) % Math.max(1, slices.length));
      show(Number(slider.value));
    }, 150);
  });
  document.getElementById("ocr").addEventListener("click", async () => {
    const sl = slices[current];
    try {
      const r = await api(`/api/qc/instances/${sl.instance_id}/ocr?frame=${sl.frame}`);
      const scale = img.clientWidth / img.naturalWidth;
      for (const b of r.boxes) {
        const d = document.createElement("div");
        d.className = "box";
        Object.assign(d.style, { left: `${b.left * scale}px`, top: `${b.top * scale}px`,
          width: `${b.width * scale}px`, height: `${b.height * scale}px` });
        document.getElementById("viewer").appendChild(d);
      }
      toast(r.boxes.length ? `${r.boxes.length} text region(s) found` : "no burned-in text found");
    } catch (e) { toast(e.message); }
  });
  for (const b of document.querySelectorAll("[data-state]")) {
    b.addEventListener("click", async () => {
      const comment = document.getElementById("comment").value;
      const r = await api(`/api/qc/series/${encodeURIComponent(uid)}/review`, {
        method: "PUT", json: { state: b.dataset.state, comment },
      });
      document.getElementById("state").textContent = r.review_state;
      toast(`series marked ${r.review_state}`);
    });
  }
  api(`/api/qc/series/${encodeURIComponent(uid)}/inventory`).then((rows) => {
    document.querySelector("#inventory tbody").innerHTML = rows.map((r) => `<tr><td>${esc(r.section)}</td>
      <td>${esc(r.element)}${r.creator ? ` <span class="muted">(${esc(r.creator)})</span>` : ""}</td>
      <td>${esc(r.vr)}</td><td>${esc(r.value)}</td><td class="num">${r.count}</td></tr>`).join("");
  });
  await show(0);
}

// -- one instance held for its pixels -----------------------------------------------------

async function showHeld(collection, instanceId) {
  const c = encodeURIComponent(collection);
  const base = `/api/deid/collections/${c}/held/${encodeURIComponent(instanceId)}`;
  setCrumbs([["#/", "Collections"], [`#/c/${c}`, collection], [`#/h/${c}/${instanceId}`, "held instance"]]);
  const held = (await api(`/api/deid/collections/${c}/held`)).find((h) => h.instance_id === instanceId);
  if (!held) { main.innerHTML = `<p class="muted">This instance is no longer held.</p>`; return; }
  main.innerHTML = `
    <h2>Held instance <span class="muted">${esc(instanceId)}</span></h2>
    <p>${esc(held.filename || "")} · ${esc(held.reason)}</p>
    <div class="row"><div>
      <div class="viewer" id="viewer"><img id="held-image" alt="held image"></div>
      <div class="controls">
        <button class="primary" id="blank">Blank the boxes and release</button>
        <button id="as-is">Release as it is</button>
        <span class="muted" id="ocr-state">looking for burned-in text…</span>
      </div>
      <p class="muted">Boxes are where OCR found text; drag on the image to add one, click a box to remove it.</p>
    </div></div>`;
  const img = document.getElementById("held-image");
  const r = await api(`${base}/render`, { raw: true });
  img.src = URL.createObjectURL(await r.blob());
  await new Promise((ok) => { if (img.complete) ok(); else img.onload = ok; });
  const scale = () => img.clientWidth / img.naturalWidth;
  let boxes = [];
  const draw = () => {
    for (const b of document.querySelectorAll(".box")) b.remove();
    boxes.forEach((b, i) => {
      const d = document.createElement("div");
      d.className = "box editable";
      d.title = "click to remove";
      Object.assign(d.style, { left: `${b.left * scale()}px`, top: `${b.top * scale()}px`,
        width: `${b.width * scale()}px`, height: `${b.height * scale()}px` });
      d.addEventListener("click", () => { boxes.splice(i, 1); draw(); });
      document.getElementById("viewer").appendChild(d);
    });
    document.getElementById("blank").disabled = !boxes.length;
  };
  try {
    // OCR's boxes hug the glyphs: blank a little around them
    const pad = 2, W = img.naturalWidth, H = img.naturalHeight;
    boxes = (held.text_boxes || await api(`${base}/ocr`)).map(({ left, top, width, height }) => {
      const x = Math.max(0, left - pad), y = Math.max(0, top - pad);
      return { left: x, top: y, width: Math.min(W, left + width + pad) - x, height: Math.min(H, top + height + pad) - y };
    });
    document.getElementById("ocr-state").textContent = boxes.length ? `${boxes.length} text region(s) found` : "no burned-in text found";
  } catch (e) { document.getElementById("ocr-state").textContent = e.message; }
  draw();
  let start = null;
  img.addEventListener("mousedown", (ev) => { ev.preventDefault(); start = [ev.offsetX, ev.offsetY]; });
  img.addEventListener("mouseup", (ev) => {
    if (!start) return;
    const [x0, y0] = start.map((v) => v / scale());
    const [x1, y1] = [ev.offsetX / scale(), ev.offsetY / scale()];
    start = null;
    const box = { left: Math.floor(Math.min(x0, x1)), top: Math.floor(Math.min(y0, y1)),
      width: Math.ceil(Math.abs(x1 - x0)), height: Math.ceil(Math.abs(y1 - y0)) };
    if (box.width > 1 && box.height > 1) { boxes.push(box); draw(); }
  });
  const done = async (path, options) => {
    try {
      const out = await api(`${base}/${path}`, options);
      toast(out.outcome === "deidentified" ? "released: it is de-identified now" : `held again: ${out.reason}`);
      location.hash = `#/c/${c}`;
    } catch (e) { toast(e.message); }
  };
  document.getElementById("blank").addEventListener("click", () => done("blank", { method: "POST", json: { rectangles: boxes } }));
  document.getElementById("as-is").addEventListener("click", () => done("release", { method: "POST" }));
}

// -- routing ------------------------------------------------------------------------------

async function route() {
  const hash = location.hash || "#/";
  if (!token() && hash !== "#/login") { location.hash = "#/login"; return; }
  who.textContent = sessionStorage.getItem("imarc.user") || "";
  try {
    if (hash === "#/login") showLogin();
    else if (hash.startsWith("#/c/")) await showCollection(decodeURIComponent(hash.slice(4)));
    else if (hash.startsWith("#/s/")) await showSeries(decodeURIComponent(hash.slice(4)));
    else if (hash.startsWith("#/h/")) {
      const [collection, instanceId] = hash.slice(4).split("/").map(decodeURIComponent);
      await showHeld(collection, instanceId);
    }
    else await showCollections();
  } catch (e) {
    main.innerHTML = `<p class="flag">${esc(e.message)}</p>`;
  }
}

window.addEventListener("hashchange", route);
route();
