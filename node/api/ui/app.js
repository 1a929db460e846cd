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

  // short cuts a CID or peer ID in the middle: bafkreigh2a…4s52zy.
  const short = (s) => (s.length <= 20 ? s : s.slice(0, 10) + "…" + s.slice(-6));
  // copyButton copies text (a full CID, an address) to the clipboard.
  const copyButton = (text, what) => el("button", { type: "button", class: "copy", "data-copy": text, title: "Copy the " + what }, "copy");
  // ident shows a CID or peer ID shortened, in full on hover, with a copy button.
  const ident = (s, what) => el("span", { class: "ident" }, el("code", { title: s }, short(s)), copyButton(s, what));
  // addr shows a multiaddr with its peer IDs shortened, in full on hover.
  const addr = (a) => el("code", { title: a }, a.replace(/(\/p2p\/)([1-9A-HJ-NP-Za-km-z]{21,})/g, (_, p, id) => p + short(id)));
  // model is a base model's name that wraps only after a slash
  // (meta-llama/ Llama-3.1-8B), never inside a part.
  const model = (s) => (s ? el("span", null, ...s.split("/").flatMap((p, i, a) =>
    i < a.length - 1 ? [el("span", { class: "nw" }, p + "/"), el("wbr")] : [el("span", { class: "nw" }, p)])) : "—");
  const ids = (ps) => el("span", null, ...ps.map((p, i) => [i > 0 ? ", " : "", el("code", { title: p, class: "nw" }, short(p))]).flat());

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
  // since is how long ago iso was, the time itself on hover.
  function since(iso) {
    const t = new Date(iso);
    if (isNaN(t)) return "—";
    let s = Math.max(0, Math.round((Date.now() - t.getTime()) / 1000));
    const ago = s < 60 ? s + " s" : s < 3600 ? Math.floor(s / 60) + " min" : Math.floor(s / 3600) + " h " + Math.floor((s % 3600) / 60) + " min";
    return el("span", { title: t.toLocaleString(), class: "nw" }, ago + " ago");
  }

  // count is "(total)", or "(shown of total)" when the list was cut.
  const count = (shown, total) => "(" + (shown < total ? shown + " of " + total : total) + ")";

  // fill replaces a table body's rows, or shows empty when there are none.
  function fill(id, rows, cols, empty) {
    const body = $(id);
    if (rows.length === 0) rows = [el("tr", { class: "empty" }, el("td", { colspan: cols }, empty))];
    body.replaceChildren(...rows);
  }

  // progress is a running transfer's bar (moving while the size is not
  // known yet); a finished one has no bar: done says what came, failed how
  // far it got.
  function progress(t) {
    const pct = t.total > 0 ? Math.min(100, Math.floor((t.bytes / t.total) * 100)) : 0;
    const amount = t.total > 0 ? pct + "% · " + bytes(t.bytes) + " of " + bytes(t.total) : bytes(t.bytes);
    switch (t.state) {
      case "running":
        if (t.total > 0) {
          return el("div", { class: "bar" }, el("progress", { value: t.bytes, max: t.total }), el("span", null, amount));
        }
        return el("div", { class: "bar" }, el("progress"), el("span", null, t.phase || "looking for providers"));
      case "done":
        return el("span", null, bytes(t.total || t.bytes) + took(t));
      default:
        return el("div", null, t.error ? el("div", { class: "error-text" }, failure(t)) : null,
          el("span", { class: "muted" }, t.bytes > 0 ? "stopped at " + amount : "nothing received"));
    }
  }
  function took(t) {
    const s = (new Date(t.finished) - new Date(t.started)) / 1000;
    return isNaN(s) || s < 0 ? "" : " in " + (s < 10 ? s.toFixed(1) : Math.round(s)) + " s";
  }

  // failure is a transfer's error without its CID, which its row shows.
  function failure(t) {
    let msg = t.error || "";
    for (const p of ["fetch " + t.cid + ": ", t.cid + ": "]) {
      if (msg.startsWith(p)) msg = msg.slice(p.length);
    }
    return msg.split(t.cid).join("this expert");
  }

  // providers are the first few peers that serve an expert and how many
  // more there are.
  function providers(e) {
    const ps = e.providers || [];
    if (ps.length === 0) return el("span", { class: "muted" }, "—");
    const n = Math.max(e.provider_count || 0, ps.length);
    const shown = ps.slice(0, 2);
    const more = n - shown.length;
    return el("div", { title: ps.join("\n") }, ids(shown), more > 0 ? el("span", { class: "muted" }, " +" + more + " more") : null);
  }

  // version is an expert's version of its publisher's line of its name.
  const version = (v, publisher) => (v ? el("span", { class: "tag", title: "version " + v + " of " + (publisher || "its publisher") + "'s line of this name" }, "v" + v) : null);

  function expertRow(e, last) {
    // Why the inference server does not get it (other base, rank...).
    const why = e.not_handed_off;
    return el("tr", { "data-cid": e.cid },
      el("td", null, e.name || "—", version(e.version, e.publisher),
        e.pinned ? el("span", { class: "tag", title: "never evicted (expertd unpin lets it go)" }, "pinned") : null,
        why ? el("div", { class: "muted", title: why.detail }, "not handed off: " + why.reason) : null),
      el("td", null, ident(e.cid, "CID")),
      el("td", null, e.peft_type || "—"),
      el("td", null, model(e.base_model)),
      el("td", { class: "num" }, bytes(e.size || 0)),
      ...last.map((c) => el("td", null, c)));
  }

  // adapterRow is an adapter name, the version in service and vLLM's state.
  function adapterRow(a) {
    let state = a.loaded ? "loaded" : "not loaded";
    if (a.pending) state = a.pending + " pending";
    if (a.failed) state = "failed";
    if (a.note) state = "not sent";
    return el("tr", { "data-name": a.name, class: a.failed ? "state-failed" : "" },
      el("td", null, a.name),
      el("td", null, a.expert_version ? el("span", null, "v" + a.expert_version, " by ", ids([a.publisher])) : el("span", { class: "muted" }, "—")),
      el("td", null, ident(a.cid, "CID")),
      el("td", { title: a.last_error || a.note || "" }, el("span", { class: "state" }, state)));
  }

  // conn is one connection to a peer: its kind (direct, relayed with the
  // relay's limits, hole-punched) and the peer's address.
  function conn(c) {
    let kind = c.kind;
    const lim = [];
    if (c.limit_bytes > 0 && c.limit_bytes < 2 ** 62) lim.push(bytes(c.limit_bytes));
    if (c.limit_seconds > 0 && c.limit_seconds < 2 ** 31) lim.push(c.limit_seconds + " s");
    if (lim.length > 0) kind += " (limit " + lim.join(", ") + ")";
    return el("li", null, el("span", { class: "kind kind-" + c.kind }, kind), " ", addr(c.addr));
  }

  function render(st) {
    $("node-id").replaceChildren(code(st.node.id), copyButton(st.node.id, "peer ID"));
    $("node-addrs").replaceChildren(...st.node.addrs.map((a) => el("li", null, code(a), copyButton(a, "address"))));
    $("node-reach").textContent = (st.node.reachability || "unknown") + (st.node.relay_service ? " · relay service on" : "");
    const rsv = st.node.reservations || [];
    $("node-relays").replaceChildren(...(rsv.length === 0 ? [el("li", { class: "muted" }, "none")]
      : rsv.map((r) => el("li", null, ident(r.relay, "relay's peer ID"), (r.addrs || []).length > 0 ? el("ul", { class: "plain" }, ...r.addrs.map((a) => el("li", null, addr(a)))) : null))));

    const n = st.counts;
    $("transfers-count").textContent = "(" + n.running_transfers + " running" +
      (st.transfers.length < n.transfers ? ", newest " + st.transfers.length + " of " + n.transfers + " shown" : "") + ")";
    fill("transfers", st.transfers.map((t) => el("tr", { "data-cid": t.cid, class: "state-" + t.state },
      el("td", null, el("div", null, t.name || el("span", { class: "muted" }, "name not known yet")), ident(t.cid, "CID")),
      el("td", null, el("span", { class: "state" }, t.state)),
      el("td", { class: "progress" }, progress(t)),
      el("td", null, since(t.started)))), 4, "No transfers.");

    $("peers-count").textContent = count(st.peers.length, n.peers);
    fill("peers", st.peers.map((p) => el("tr", { "data-peer": p.id },
      el("td", null, ident(p.id, "peer ID")),
      el("td", { class: "num" }, latency(p.latency_ms)),
      el("td", null, el("ul", { class: "plain" }, ...(p.conns && p.conns.length > 0 ? p.conns.map(conn) : (p.addrs || []).map((a) => el("li", null, addr(a)))))))),
      3, "No peers connected.");

    $("adapters-count").textContent = count(st.adapters.length, n.adapters);
    fill("adapters", st.adapters.map(adapterRow), 4, "No adapters written (inference.adapters_dir).");

    const local = st.experts.filter((e) => e.local);
    const remote = st.experts.filter((e) => !e.local);
    $("local-count").textContent = count(local.length, n.local_experts);
    fill("local", local.map((e) => expertRow(e, [providers(e)])), 6, "No experts stored.");
    $("remote-count").textContent = count(remote.length, n.remote_experts);
    fill("remote", remote.map((e) => expertRow(e, [providers(e)])), 6, "No other experts known in the swarm.");
    $("experts-more").hidden = !st.experts_next;
  }

  // A copy button puts its text on the clipboard; where the page is not a
  // secure context (http on a LAN address) through a selected text area.
  document.addEventListener("click", async (ev) => {
    const b = ev.target.closest("button.copy");
    if (!b) return;
    const text = b.getAttribute("data-copy");
    try {
      await navigator.clipboard.writeText(text);
    } catch (_) {
      const ta = el("textarea", { readonly: "" }, text);
      document.body.append(ta);
      ta.select();
      document.execCommand("copy");
      ta.remove();
    }
    b.textContent = "copied";
    setTimeout(() => { b.textContent = "copy"; }, 1500);
  });

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
