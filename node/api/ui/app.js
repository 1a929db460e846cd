// expertd status page: polls GET /v1/status every 2 s and renders it: the
// first page of experts (and of every list), with the full counts.
// With an API token, open the page as /?token=TOKEN: the token is sent as
// "Authorization: Bearer TOKEN". Everything from the API is put in the page
// as text, never as HTML: names and IDs come from the swarm.
"use strict";

(function () {
  const every = 2000;
  const token = new URLSearchParams(location.search).get("token") || "";
  const $ = (id) => document.getElementById(id);

  // el builds an element; children are nodes or strings (made text).
  function el(tag, props, ...children) {
    const e = document.createElement(tag);
    for (const [k, v] of Object.entries(props || {})) {
      if (k === "class") e.className = v;
      else if (k === "title") e.title = v;
      else e.setAttribute(k, v);
    }
    for (const c of children) {
      if (c !== null && c !== undefined) e.append(c);
    }
    return e;
  }
  const code = (s) => el("code", { title: s }, s);
  const list = (items) => el("ul", { class: "plain" }, ...items.map((s) => el("li", null, code(s))));

  function bytes(n) {
    const units = ["B", "KiB", "MiB", "GiB", "TiB"];
    let i = 0;
    while (n >= 1024 && i < units.length - 1) { n /= 1024; i++; }
    return (i === 0 ? String(n) : n.toFixed(1)) + " " + units[i];
  }
  function latency(ms) {
    if (!ms) return "—";
    return (ms >= 100 ? Math.round(ms) : ms.toFixed(1)) + " ms";
  }
  function since(iso) {
    const t = new Date(iso);
    if (isNaN(t)) return "—";
    let s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
    const ago = s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " min " + (s % 60) + " s" : Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return t.toLocaleTimeString() + " (" + ago + " ago)";
  }

  // count is "(total)", or "(shown of total)" when the list was cut.
  const count = (shown, total) => "(" + (shown < total ? shown + " of " + total : total) + ")";

  // fill replaces a table body's rows, or shows empty when there are none.
  function fill(id, rows, cols, empty) {
    const body = $(id);
    if (rows.length === 0) rows = [el("tr", { class: "empty" }, el("td", { colspan: cols }, empty))];
    body.replaceChildren(...rows);
  }

  function progress(t) {
    if (t.total > 0) {
      const pct = Math.min(100, Math.floor((t.bytes / t.total) * 100));
      return el("div", { class: "bar" },
        el("progress", { value: t.bytes, max: t.total }),
        el("span", null, pct + "% · " + bytes(t.bytes) + " of " + bytes(t.total)));
    }
    return el("div", { class: "bar" }, el("progress"), el("span", null, bytes(t.bytes)));
  }

  function providers(e) {
    const ps = e.providers || [];
    const more = (e.provider_count || 0) - ps.length;
    return el("div", null, list(ps), more > 0 ? el("span", { class: "muted" }, "+" + more + " more") : null);
  }

  function expertRow(e, last) {
    // Why the inference server does not get it (other base, rank...).
    const why = e.not_handed_off;
    return el("tr", { "data-cid": e.cid },
      el("td", null, e.name || "—",
        why ? el("div", { class: "muted", title: why.detail }, "not handed off: " + why.reason) : null),
      el("td", null, code(e.cid)),
      el("td", null, e.peft_type || "—"),
      el("td", null, e.base_model || "—"),
      el("td", { class: "num" }, bytes(e.size || 0)),
      el("td", null, last));
  }

  // conn is one connection to a peer: its kind (direct, relayed with the
  // relay's limits, hole-punched) and the peer's address.
  function conn(c) {
    let kind = c.kind;
    const lim = [];
    if (c.limit_bytes > 0 && c.limit_bytes < 2 ** 62) lim.push(bytes(c.limit_bytes));
    if (c.limit_seconds > 0 && c.limit_seconds < 2 ** 31) lim.push(c.limit_seconds + " s");
    if (lim.length > 0) kind += " (limit " + lim.join(", ") + ")";
    return el("li", null, el("span", { class: "kind kind-" + c.kind }, kind), " ", code(c.addr));
  }

  function render(st) {
    $("node-id").textContent = st.node.id;
    $("node-addrs").replaceChildren(...st.node.addrs.map((a) => el("li", null, code(a))));
    $("node-reach").textContent = (st.node.reachability || "unknown") + (st.node.relay_service ? " · relay service on" : "");
    const rsv = st.node.reservations || [];
    $("node-relays").replaceChildren(...(rsv.length === 0 ? [el("li", { class: "muted" }, "none")]
      : rsv.map((r) => el("li", null, code(r.relay), (r.addrs || []).length > 0 ? list(r.addrs) : null))));

    const n = st.counts;
    $("peers-count").textContent = count(st.peers.length, n.peers);
    fill("peers", st.peers.map((p) => el("tr", { "data-peer": p.id },
      el("td", null, code(p.id)),
      el("td", { class: "num" }, latency(p.latency_ms)),
      el("td", null, p.conns && p.conns.length > 0 ? el("ul", { class: "plain" }, ...p.conns.map(conn)) : list(p.addrs || [])))),
      3, "No peers connected.");

    const local = st.experts.filter((e) => e.local);
    const remote = st.experts.filter((e) => !e.local);
    $("local-count").textContent = count(local.length, n.local_experts);
    fill("local", local.map((e) => expertRow(e, e.pinned ? "pinned" : "no")), 6, "No experts stored.");
    $("remote-count").textContent = count(remote.length, n.remote_experts);
    fill("remote", remote.map((e) => expertRow(e, providers(e))), 6, "No remote experts known.");
    $("experts-more").hidden = !st.experts_next;

    $("transfers-count").textContent = "(" + n.running_transfers + " running" +
      (st.transfers.length < n.transfers ? ", newest " + st.transfers.length + " of " + n.transfers + " shown" : "") + ")";
    fill("transfers", st.transfers.map((t) => el("tr", { "data-cid": t.cid, class: "state-" + t.state },
      el("td", null, code(t.cid)),
      el("td", null, el("span", { class: "state" }, t.state), t.error ? el("div", { class: "error-text" }, t.error) : null),
      el("td", { class: "progress" }, progress(t)),
      el("td", null, since(t.started)))), 4, "No transfers.");
  }

  function showError(msg) {
    $("error").textContent = msg;
    $("error").hidden = msg === "";
  }

  async function refresh() {
    const headers = token ? { Authorization: "Bearer " + token } : {};
    let resp;
    try {
      resp = await fetch("v1/status", { headers, cache: "no-store" });
    } catch (err) {
      showError("Cannot reach the daemon: " + err.message);
      return;
    }
    if (resp.status === 401) {
      showError(token ? "The token in this page's URL is wrong." : "This node's API needs its token: open this page as /?token=TOKEN.");
      return;
    }
    if (!resp.ok) {
      let msg = resp.statusText;
      try { msg = (await resp.json()).error || msg; } catch (_) { /* not JSON */ }
      showError("GET /v1/status: HTTP " + resp.status + ": " + msg);
      return;
    }
    render(await resp.json());
    showError("");
    $("updated").textContent = "updated " + new Date().toLocaleTimeString();
  }

  async function loop() {
    await refresh();
    setTimeout(loop, every);
  }
  loop();
})();
