/* streamlimit operator console: plain JS, same-origin API calls only. */
"use strict";

(function () {
  var KEY = "streamlimit.console.credential";
  var SCRAPE_MS = 5000;
  var REFRESH_MS = 10000;
  var POINTS = 60;

  var $ = function (id) { return document.getElementById(id); };
  var state = { user: null, skewMs: 0, series: [], last: null, timers: [], live: null };

  function credential() {
    try { return JSON.parse(sessionStorage.getItem(KEY) || "null"); } catch (e) { return null; }
  }

  function authHeaders(cred) {
    if (!cred) { return {}; }
    if (cred.kind === "bearer") { return { "Authorization": "Bearer " + cred.value }; }
    return { "X-API-Key": cred.value };
  }

  function status(text, isError) {
    var el = $("status");
    el.textContent = text;
    el.className = isError ? "error" : "muted";
  }

  function AuthError() { this.message = "credentials needed"; }

  async function api(method, path, body, cred) {
    var headers = authHeaders(cred === undefined ? credential() : cred);
    var init = { method: method, headers: headers, cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(body);
    }
    var r = await fetch(path, init);
    var date = r.headers.get("Date");
    if (date) { state.skewMs = Date.parse(date) - Date.now(); }
    if (r.status === 401) { throw new AuthError(); }
    if (r.status === 204) { return null; }
    var type = r.headers.get("Content-Type") || "";
    var data = type.indexOf("json") >= 0 ? await r.json() : await r.text();
    if (!r.ok) {
      var detail = data && data.detail ? data.detail : (data && data.title) || String(r.status);
      throw new Error(method + " " + path + ": " + r.status + " " + detail);
    }
    return data;
  }

  function userPath(suffix) { return "/v1/users/" + encodeURIComponent(state.user) + suffix; }

  function failed(err) {
    if (err instanceof AuthError) {
      askForCredentials("The service refused the credentials (401).");
      return;
    }
    status(err.message || String(err), true);
  }

  // ---- credentials

  function askForCredentials(why) {
    sessionStorage.removeItem(KEY);
    $("main").hidden = true;
    $("signout").hidden = true;
    $("auth").hidden = false;
    $("auth-error").textContent = why || "";
    status("Credentials needed.", false);
    $("auth-value").focus();
  }

  function open(cred) {
    $("auth").hidden = true;
    $("main").hidden = false;
    $("signout").hidden = !cred;
    $("who").textContent = cred ? (cred.kind === "bearer" ? "bearer token" : "API key") + " in this tab" : "auth: none";
    status("Ready.", false);
    scrape();
  }

  async function start() {
    var cred = credential();
    try {
      await api("GET", "/v1/users/x/limit", undefined, cred);
      open(cred);
    } catch (err) {
      if (err instanceof AuthError) {
        askForCredentials(cred ? "The stored credentials were refused." : "");
      } else {
        status("Cannot reach the service: " + err.message, true);
      }
    }
    state.timers.push(setInterval(scrape, SCRAPE_MS));
    state.timers.push(setInterval(tick, 1000));
    state.timers.push(setInterval(function () { if (state.user && !$("main").hidden) { load(); } }, REFRESH_MS));
  }

  $("auth-form").addEventListener("submit", async function (ev) {
    ev.preventDefault();
    var cred = { kind: $("auth-kind").value, value: $("auth-value").value.trim() };
    try {
      await api("GET", "/v1/users/x/limit", undefined, cred);
    } catch (err) {
      $("auth-error").textContent = err instanceof AuthError ? "Refused (401): check the secret." : err.message;
      return;
    }
    sessionStorage.setItem(KEY, JSON.stringify(cred));
    $("auth-value").value = "";
    open(cred);
    if (state.user) { load(); }
  });

  $("signout").addEventListener("click", function () { askForCredentials("Credentials forgotten."); });

  // ---- one user

  function cell(row, text, cls) {
    var td = document.createElement("td");
    td.textContent = text;
    if (cls) { td.className = cls; }
    row.appendChild(td);
    return td;
  }

  function localTime(iso) {
    var d = new Date(iso);
    return isNaN(d) ? iso : d.toLocaleString();
  }

  function countdown(expiresIso) {
    var left = Math.round((Date.parse(expiresIso) - (Date.now() + state.skewMs)) / 1000);
    if (!(left > 0)) { return "expired"; }
    var m = Math.floor(left / 60);
    var s = left % 60;
    return m + ":" + (s < 10 ? "0" : "") + s;
  }

  function tick() {
    var cells = document.querySelectorAll("#streams td.countdown");
    for (var i = 0; i < cells.length; i++) {
      var text = countdown(cells[i].dataset.expires);
      cells[i].textContent = text;
      cells[i].classList.toggle("expiring", text === "expired" || /^0:[0-2]/.test(text));
    }
  }

  function orDash(value) { return value === null || value === undefined || value === "" ? "-" : String(value); }

  function renderStreams(list) {
    var body = document.querySelector("#streams tbody");
    body.replaceChildren();
    list.streams.forEach(function (s) {
      var row = document.createElement("tr");
      row.dataset.streamId = s.stream_id;
      cell(row, s.stream_id, "stream-id");
      cell(row, orDash(s.device), "device");  // the player's label for people
      cell(row, orDash(s.device_id), "device-id");  // the player installation's stable id
      cell(row, localTime(s.started_at), "started");
      cell(row, countdown(s.expires_at), "countdown").dataset.expires = s.expires_at;
      var td = document.createElement("td");
      var b = document.createElement("button");
      b.type = "button";
      b.className = "stop danger";
      b.textContent = "Stop";
      b.dataset.streamId = s.stream_id;
      b.addEventListener("click", function () { stopOne(s.stream_id); });
      td.appendChild(b);
      row.appendChild(td);
      body.appendChild(row);
    });
    $("no-streams").hidden = list.streams.length > 0;
    $("stop-all").disabled = list.streams.length === 0;
    var counted = list.counts === "devices" ? " devices active (" + list.streams.length + " streams)" : " streams active";
    $("summary").textContent = list.user_id + ": " + list.active + " of " + list.limit + counted + " (limit from " +
      list.limit_source + (list.plan ? ", plan " + list.plan : "") + ")";
    tick();
  }

  function renderLimit(info) {
    $("limit-current").textContent = "current: " + info.limit + " (" + info.limit_source + ")";
    if (document.activeElement !== $("limit-value")) { $("limit-value").value = info.limit; }
  }

  // evicted and replaced: the stream that took the slot (and, replaced, the device that restarted);
  // limit_set, plan_set: the new value
  function eventDetail(e) {
    var parts = [];
    if (e.value !== null && e.value !== undefined) {
      parts.push((e.action === "evicted" || e.action === "replaced" ? "by " : "") + e.value);
    }
    if (e.device_id) { parts.push("device " + e.device_id); }
    return parts.length ? parts.join(", ") : "-";
  }

  function renderEvents(data) {
    var body = document.querySelector("#events tbody");
    body.replaceChildren();
    data.events.slice().reverse().forEach(function (e) {
      var row = document.createElement("tr");
      row.className = "event";
      cell(row, localTime(e.at), "at");
      cell(row, e.action, "action");
      cell(row, e.actor === null || e.actor === undefined ? "-" : e.actor, "actor");
      cell(row, (e.streams || []).join(", "), "streams");
      cell(row, eventDetail(e), "detail");
      body.appendChild(row);
    });
    $("no-events").hidden = data.events.length > 0;
  }

  async function load() {
    try {
      var got = await Promise.all([api("GET", userPath("/streams")), api("GET", userPath("/limit")),
        api("GET", userPath("/events"))]);
      renderStreams(got[0]);
      renderLimit(got[1]);
      renderEvents(got[2]);
      $("user").hidden = false;
      status("Showing " + state.user + " (refreshed " + new Date().toLocaleTimeString() + ").", false);
    } catch (err) {
      failed(err);
    }
  }

  // the user's live view (GET /v1/users/{user}/live, Server-Sent Events): the list again whenever
  // a stream of theirs starts or ends, on any instance; read with fetch, which can send the
  // credentials (EventSource cannot)
  function follow() {
    if (state.live) { state.live.abort(); }
    var user = state.user, ctl = new AbortController();
    state.live = ctl;
    (async function () {
      try {
        var r = await fetch(userPath("/live"), { headers: authHeaders(credential()), cache: "no-store",
          credentials: "omit", signal: ctl.signal });
        if (!r.ok || !r.body) { throw new Error("live view: " + r.status); }
        var reader = r.body.getReader(), decoder = new TextDecoder(), buffer = "";
        for (;;) {
          var chunk = await reader.read();
          if (chunk.done) { break; }
          buffer += decoder.decode(chunk.value, { stream: true });
          var frames = buffer.split("\n\n");
          buffer = frames.pop();
          frames.forEach(function (frame) { onFrame(user, frame); });
        }
      } catch (err) {
        if (ctl.signal.aborted) { return; }
      }
      if (state.live === ctl && state.user === user) { setTimeout(function () { if (state.live === ctl) { follow(); } }, 2000); }
    })();
  }

  function onFrame(user, frame) {
    var name = null, data = null;
    frame.split("\n").forEach(function (line) {
      if (line.indexOf("event: ") === 0) { name = line.slice(7); }
      if (line.indexOf("data: ") === 0) { data = JSON.parse(line.slice(6)); }
    });
    if (name !== "streams" || user !== state.user) { return; }
    renderStreams(data);
    $("user").hidden = false;
    api("GET", userPath("/events")).then(renderEvents, failed);
    status("Showing " + user + " (live, " + new Date().toLocaleTimeString() + ").", false);
  }

  async function act(what, fn) {
    try {
      await fn();
      status(what, false);
    } catch (err) {
      failed(err);
      return;
    }
    await load();
  }

  function stopOne(streamId) {
    act("Stopped " + streamId + ".", function () {
      return api("DELETE", userPath("/streams/" + encodeURIComponent(streamId)));
    });
  }

  $("lookup-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    state.user = $("lookup-user").value.trim();
    $("limit-value").value = "";
    if (state.user) { load(); follow(); }
  });

  $("stop-all").addEventListener("click", function () {
    act("Stopped all streams.", function () { return api("DELETE", userPath("/streams")); });
  });

  $("limit-form").addEventListener("submit", function (ev) {
    ev.preventDefault();
    var n = parseInt($("limit-value").value, 10);
    $("limit-value").blur();
    act("Limit set to " + n + ".", function () { return api("PUT", userPath("/limit"), { limit: n }); });
  });

  $("limit-clear").addEventListener("click", function () {
    act("Limit override cleared.", function () { return api("DELETE", userPath("/limit")); });
  });

  // ---- live panel: /metrics scraped every few seconds, rates from successive scrapes

  function parseMetrics(text) {
    var out = { active: null, admitted: 0, refused: 0 };
    text.split("\n").forEach(function (line) {
      if (!line || line.charAt(0) === "#") { return; }
      var m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{[^}]*\})?\s+(\S+)/.exec(line);
      if (!m) { return; }
      var value = parseFloat(m[3]);
      if (m[1] === "streamlimit_active_streams") {
        out.active = (out.active || 0) + value;
      } else if (m[1] === "streamlimit_requests_total") {
        var outcome = /outcome="([^"]*)"/.exec(m[2] || "");
        // an evicting start is an admission too; a refusal is at the limit or over the start rate
        if (outcome && (outcome[1] === "admitted" || outcome[1] === "evicted")) { out.admitted += value; }
        if (outcome && (outcome[1] === "limit_reached" || outcome[1] === "too_many_starts")) {
          out.refused += value;
        }
      }
    });
    return out;
  }

  async function scrape() {
    if ($("main").hidden) { return; }
    var text;
    try {
      text = await api("GET", "/metrics");
    } catch (err) {
      $("live-note").textContent = err instanceof AuthError ? "/metrics needs credentials." : "No metrics: " + err.message;
      return;
    }
    var now = Date.now();
    var m = parseMetrics(typeof text === "string" ? text : "");
    $("live-active").textContent = m.active === null ? "-" : String(Math.round(m.active));
    if (state.last) {
      var minutes = (now - state.last.at) / 60000;
      var point = {
        at: now,
        active: m.active || 0,
        admitted: Math.max(0, m.admitted - state.last.admitted) / minutes,
        refused: Math.max(0, m.refused - state.last.refused) / minutes
      };
      state.series.push(point);
      if (state.series.length > POINTS) { state.series.shift(); }
      $("live-admitted").textContent = point.admitted.toFixed(1);
      $("live-refused").textContent = point.refused.toFixed(1);
    }
    state.last = { at: now, admitted: m.admitted, refused: m.refused };
    $("live-note").textContent = "Scraped from /metrics every 5 s; last " + new Date(now).toLocaleTimeString() + ".";
    draw();
  }

  function niceMax(v) {
    // four grid steps of 1, 2 or 5 times a power of ten
    var want = Math.max(v, 4) / 4;
    var p = Math.pow(10, Math.floor(Math.log10(want)));
    var steps = [1, 2, 5, 10];
    for (var i = 0; i < steps.length; i++) { if (steps[i] * p >= want) { return 4 * steps[i] * p; } }
    return 40 * p;
  }

  function draw() {
    var canvas = $("chart");
    var ratio = window.devicePixelRatio || 1;
    var w = canvas.clientWidth || 640;
    var h = canvas.clientHeight || 220;
    if (canvas.width !== Math.round(w * ratio)) { canvas.width = Math.round(w * ratio); }
    if (canvas.height !== Math.round(h * ratio)) { canvas.height = Math.round(h * ratio); }
    var ctx = canvas.getContext("2d");
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, w, h);
    var left = 44, right = 10, top = 10, bottom = 24;
    var pw = w - left - right, ph = h - top - bottom;
    var peak = 0;
    state.series.forEach(function (p) { peak = Math.max(peak, p.admitted, p.refused); });
    var max = niceMax(peak);
    ctx.font = "11px system-ui, sans-serif";
    ctx.fillStyle = "#667085";
    ctx.strokeStyle = "#e4e7ec";
    ctx.lineWidth = 1;
    for (var i = 0; i <= 4; i++) {
      var y = top + ph - (ph * i) / 4;
      ctx.beginPath(); ctx.moveTo(left, y); ctx.lineTo(left + pw, y); ctx.stroke();
      ctx.textAlign = "right"; ctx.textBaseline = "middle";
      ctx.fillText(String(Math.round((max * i) / 4 * 10) / 10), left - 6, y);
    }
    ctx.textAlign = "left"; ctx.textBaseline = "top";
    ctx.fillText("per minute, last " + Math.round((POINTS * SCRAPE_MS) / 60000) + " min", left, top + ph + 6);
    if (state.series.length === 0) {
      ctx.textAlign = "center"; ctx.textBaseline = "middle";
      ctx.fillText("collecting (two scrapes needed)...", left + pw / 2, top + ph / 2);
      return;
    }
    function line(key, color) {
      ctx.strokeStyle = color; ctx.fillStyle = color; ctx.lineWidth = 2;
      ctx.beginPath();
      state.series.forEach(function (p, idx) {
        var x = left + pw - ((state.series.length - 1 - idx) * pw) / (POINTS - 1);
        var y = top + ph - (p[key] / max) * ph;
        if (idx === 0) { ctx.moveTo(x, y); } else { ctx.lineTo(x, y); }
      });
      ctx.stroke();
      if (state.series.length === 1) {
        var only = state.series[0];
        ctx.beginPath(); ctx.arc(left + pw, top + ph - (only[key] / max) * ph, 3, 0, 2 * Math.PI); ctx.fill();
      }
    }
    line("admitted", "#1a7f37");
    line("refused", "#c9302c");
  }

  window.addEventListener("resize", draw);
  start();
}());
