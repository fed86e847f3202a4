// deploygraph's web console: pages over the /v1 API, routed by the URL fragment. Everything
// shown is put in the page as text (textContent), never as markup: alert annotations, commit
// messages and config values are whatever their senders wrote.
"use strict";
(function () {
  const main = document.getElementById("main");
  const TOKEN_KEY = "deploygraph.token";
  const KINDS = ["deployment", "change", "snapshot", "chaos_started", "chaos_ended", "alert_firing",
    "alert_resolved", "verdict", "canary_started", "canary_decided", "rolled_back"];
  const RANGES = { "1h": 3600, "6h": 21600, "24h": 86400, "7d": 604800, "30d": 2592000 };

  // --- building the page --------------------------------------------------------------------

  function el(tag, attrs, ...children) {
    const node = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key === "class") node.className = value;
      else if (key.startsWith("on")) node.addEventListener(key.slice(2), value);
      else node.setAttribute(key, value === true ? "" : String(value));
    }
    append(node, children);
    return node;
  }

  function append(node, children) {
    for (const child of children) {
      if (child === undefined || child === null || child === false) continue;
      if (Array.isArray(child)) append(node, child);
      else if (child instanceof Node) node.appendChild(child);
      else node.appendChild(document.createTextNode(String(child)));
    }
  }

  const SVG = "http://www.w3.org/2000/svg";

  // An SVG element with its attributes and, when given, its text (as text, never markup).
  function svgEl(tag, attrs, text) {
    const node = document.createElementNS(SVG, tag);
    for (const [k, v] of Object.entries(attrs || {})) node.setAttribute(k, v);
    if (text !== undefined) node.textContent = text;
    return node;
  }

  function render(...nodes) {
    main.replaceChildren(...nodes.flat().filter(Boolean));
  }

  function table(headers, rows) {
    return el("table", {},
      el("thead", {}, el("tr", {}, headers.map((h) => el("th", {}, h)))),
      el("tbody", {}, rows.map((cells) => el("tr", {}, cells.map((c) => el("td", {}, c))))));
  }

  function badge(text) {
    return el("span", { class: "badge " + String(text || "") }, text || "–");
  }

  function when(t) {
    if (!t) return "–";
    const d = new Date(t);
    return isNaN(d) ? String(t) : d.toISOString().replace("T", " ").replace(/\.\d+Z$/, "Z").replace(/:00Z$/, "Z");
  }

  function percent(x) {
    return typeof x === "number" ? (100 * x).toFixed(1) + " %" : "–";
  }

  function link(href, text) {
    return el("a", { href }, text);
  }

  function q(params) {
    const s = new URLSearchParams();
    for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") s.set(k, v);
    const text = s.toString();
    return text ? "?" + text : "";
  }

  // --- the API ------------------------------------------------------------------------------

  function token() {
    try { return sessionStorage.getItem(TOKEN_KEY) || ""; } catch (_) { return ""; }
  }

  async function api(path, options) {
    const headers = { Accept: "application/json" };
    const t = token();
    if (t) headers.Authorization = "Bearer " + t;
    if (options && options.body) headers["Content-Type"] = "application/json";
    let response;
    try {
      response = await fetch(path, Object.assign({ headers }, options || {}));
    } catch (e) {
      return { status: 0, body: { error: { message: "the server could not be reached: " + e } } };
    }
    let body = null;
    try { body = await response.json(); } catch (_) { body = null; }
    return { status: response.status, body };
  }

  function failure(res, what) {
    if (res.status === 401) {
      return el("p", { class: "error", id: "needs-token" },
        "This server needs a token to read " + what + ": set it with the Token button.");
    }
    const message = res.body && res.body.error ? res.body.error.message : "status " + res.status;
    return el("p", { class: "error" }, "Could not read " + what + ": " + message);
  }

  // --- routing ------------------------------------------------------------------------------

  function current() {
    const raw = location.hash.replace(/^#/, "") || "/";
    const at = raw.indexOf("?");
    const path = at < 0 ? raw : raw.slice(0, at);
    const params = new URLSearchParams(at < 0 ? "" : raw.slice(at + 1));
    // A token handed over in the fragment (never sent to the server) is kept for the tab only
    // and taken out of the address.
    if (params.has("token")) {
      try { sessionStorage.setItem(TOKEN_KEY, params.get("token")); } catch (_) { /* private mode */ }
      params.delete("token");
      const rest = params.toString();
      history.replaceState(null, "", "#" + path + (rest ? "?" + rest : ""));
    }
    const parts = path.split("/").filter(Boolean).map((p) => { try { return decodeURIComponent(p); } catch (_) { return p; } });
    return { parts, params };
  }

  async function route() {
    await show();
    // The page is complete: what the browser tests and the console benchmark wait for.
    main.dataset.ready = "1";
  }

  async function show() {
    delete main.dataset.ready;
    const { parts, params } = current();
    document.getElementById("token-button").textContent = token() ? "Token ✓" : "Token";
    render(el("p", { class: "muted" }, "Loading…"));
    try {
      switch (parts[0]) {
        case undefined: return await servicesPage();
        case "service": return await timelinePage(parts.slice(1).join("/"), params);
        case "alert": return await alertPage(parts[1], params);
        case "deployment": return await deploymentPage(parts[1]);
        case "ask": return await askPage(params.get("q") || "");
        case "incident": return await incidentPage(parts[1], params);
        default: return render(el("p", { class: "error" }, "No such page."), link("#/", "Services"));
      }
    } catch (e) {
      render(el("p", { class: "error" }, "The page failed: " + e));
    }
  }

  // --- pages --------------------------------------------------------------------------------

  async function servicesPage() {
    document.title = "deploygraph · services";
    const [services, alerts, snapshot] = await Promise.all([
      api("/v1/services"), api("/v1/alerts?limit=1000"), api("/v1/snapshots/latest")]);
    if (services.status !== 200) return render(el("h1", {}, "Services"), failure(services, "the services"));
    // A service is its name, environment and cluster: the same name in two clusters is two rows.
    const key = (name, environment, cluster) => name + "/" + (environment || "") + "/" + (cluster || "default");
    const firing = {};
    for (const a of (alerts.body && alerts.body.items) || []) {
      if (a.status === "firing" && a.service) {
        const k = key(a.service, a.environment, a.cluster);
        firing[k] = (firing[k] || 0) + 1;
      }
    }
    const items = services.body.items || services.body.services || services.body || [];
    const gate = snapshot.status === 200 && snapshot.body
      ? el("p", { id: "gate" }, "Latest infra snapshot: ", badge(snapshot.body.verdict), " ", when(snapshot.body.taken_at),
        snapshot.body.cluster ? " on " + snapshot.body.cluster : "")
      : el("p", { class: "muted", id: "gate" }, "No infra snapshot yet.");
    render(
      el("h1", {}, "Services"),
      gate,
      items.length === 0
        ? el("p", { class: "muted" }, "No service recorded yet: record a deployment (deploygraph record deployment).")
        : table(["Service", "Environment", "Namespace", "Cluster", "Deployments", "Last deployed", "Firing alerts"],
          items.map((s) => [
            link("#/service/" + encodeURIComponent(s.name) + q({ environment: s.environment, namespace: s.namespace, cluster: s.cluster }), s.name),
            s.environment, s.namespace || "–", s.cluster || "default", s.deployments, when(s.last_deployed_at),
            firing[key(s.name, s.environment, s.cluster)] ? el("span", { class: "firing" }, firing[key(s.name, s.environment, s.cluster)]) : "0",
          ])));
  }

  async function timelinePage(name, params) {
    document.title = "deploygraph · " + name;
    const range = RANGES[params.get("range")] ? params.get("range") : "24h";
    const until = params.get("until") ? new Date(params.get("until")) : new Date();
    const since = params.get("since") ? new Date(params.get("since")) : new Date(until.getTime() - RANGES[range] * 1000);
    const environment = params.get("environment") || "";
    const kinds = new Set((params.get("kinds") || KINDS.join(",")).split(",").filter((k) => KINDS.includes(k)));
    const withDeps = params.get("deps") === "1";
    const span = { since: since.toISOString(), until: until.toISOString() };
    const namespace = params.get("namespace") || "";
    const cluster = params.get("cluster") || "";
    const [timeline, deps] = await Promise.all([
      api("/v1/services/" + encodeURIComponent(name) + "/timeline" + q(Object.assign({ environment, cluster }, span))),
      environment
        ? api("/v1/services/" + encodeURIComponent(name) + "/dependencies" + q({ environment, namespace, cluster }))
        : Promise.resolve({ status: 0, body: null })]);
    if (timeline.status !== 200) return render(el("h1", {}, name), failure(timeline, "the timeline"));
    let events = timeline.body.events.map((e) => Object.assign({ service: name }, e));
    // Each dependency is a service of one cluster (the edge's; absent: the default one).
    const dependencies = [];
    for (const d of (deps.status === 200 && deps.body && deps.body.depends_on) || []) {
      const dep = { name: d.name || (d.service && d.service.name), cluster: d.cluster || (d.service && d.service.cluster) || "default" };
      if (dep.name && !dependencies.some((o) => o.name === dep.name && o.cluster === dep.cluster)) dependencies.push(dep);
    }
    if (withDeps) {
      const more = await Promise.all(dependencies.map((d) =>
        api("/v1/services/" + encodeURIComponent(d.name) + "/timeline" + q(Object.assign({ environment, cluster: d.cluster }, span)))));
      more.forEach((res, i) => {
        if (res.status === 200) {
          for (const e of res.body.events) {
            if (e.kind === "deployment" || e.kind === "change") events.push(Object.assign({ service: dependencies[i].name }, e));
          }
        }
      });
      events.sort((a, b) => new Date(a.at) - new Date(b.at));
    }
    events = events.filter((e) => kinds.has(e.kind));
    const go = (changes) => {
      const next = new URLSearchParams(params);
      for (const [k, v] of Object.entries(changes)) { if (v === null) next.delete(k); else next.set(k, v); }
      location.hash = "#/service/" + encodeURIComponent(name) + "?" + next.toString();
    };
    const filters = el("div", { class: "filters", id: "filters" },
      el("label", {}, "Range ",
        el("select", { id: "range", onchange: (ev) => go({ range: ev.target.value, since: null, until: null }) },
          Object.keys(RANGES).map((r) => el("option", { value: r, selected: r === range && !params.get("since") }, r)))),
      KINDS.map((k) => el("label", {},
        el("input", { type: "checkbox", "data-kind": k, checked: kinds.has(k),
          onchange: () => go({ kinds: KINDS.filter((x) => x === k ? !kinds.has(x) : kinds.has(x)).join(",") }) }),
        k.replace(/_/g, " "))),
      dependencies.length
        ? el("label", {}, el("input", { type: "checkbox", id: "deps", checked: withDeps, onchange: () => go({ deps: withDeps ? null : "1" }) }),
          "dependencies' changes (" + dependencies.map((d) => d.name).join(", ") + ")")
        : null);
    render(
      el("h1", {}, name, environment ? " · " + environment : "", cluster ? " · " + cluster : ""),
      el("p", { class: "muted" }, when(span.since) + " to " + when(span.until) + " · " + events.length + " events"),
      filters,
      axis(events, since, until),
      events.length === 0
        ? el("p", { class: "muted", id: "no-events" }, "Nothing in this range.")
        : table(["When", "Service", "Kind", "What"], events.map((e) => [
          when(e.at), e.service, badge(e.kind), eventLink(e)])),
      timeline.body.truncated ? el("p", { class: "muted" }, "More events than shown: narrow the range.") : null);
  }

  // A timeline event as a link to its page: deployments and rollbacks by uid, alerts and
  // reviewers' verdicts by the alert's fingerprint.
  function eventLink(e) {
    if (e.kind === "deployment" || e.kind === "rolled_back") return link("#/deployment/" + encodeURIComponent(e.uid), e.summary);
    if (e.fingerprint) return link("#/alert/" + encodeURIComponent(e.fingerprint), e.summary);
    return e.summary;
  }

  // A time axis of the events, one dot per event, coloured by kind.
  function axis(events, since, until) {
    const svg = svgEl("svg", { class: "axis", viewBox: "0 0 1000 56", preserveAspectRatio: "none", role: "img",
      "aria-label": "events on a time axis" });
    const span = Math.max(1, until - since);
    svg.appendChild(svgEl("line", { x1: 10, x2: 990, y1: 40, y2: 40, stroke: "#9aa4af" }));
    const colour = (k) => (k.startsWith("alert") ? "#b42318" : k === "deployment" ? "#0b5cad" : k === "change" ? "#7a5af8"
      : k.startsWith("chaos") ? "#b54708" : k.startsWith("canary") ? "#067647" : "#5b6470");
    for (const e of events) {
      const x = 10 + 980 * Math.min(1, Math.max(0, (new Date(e.at) - since) / span));
      const dot = svgEl("rect", { x: x - 2, y: e.kind.startsWith("alert") ? 8 : 24, width: 4, height: 14, fill: colour(e.kind) });
      dot.appendChild(svgEl("title", {}, when(e.at) + " " + e.kind + ": " + e.summary));
      svg.appendChild(dot);
    }
    return svg;
  }

  function changesTable(changes) {
    if (!changes || changes.length === 0) return el("p", { class: "muted" }, "No config change.");
    return table(["Key", "Kind", "Before", "After"], changes.map((c) => [
      el("code", {}, c.path), c.kind, el("code", {}, c.before === undefined || c.before === null ? "–" : c.before),
      el("code", {}, c.after === undefined || c.after === null ? "–" : c.after)]));
  }

  function suspectsTable(fingerprint, suspects, canReview) {
    return table(["#", "Suspect", "Confidence", "Reasons", "What changed", "Review"], suspects.map((s, i) => {
      const d = s.deployment || {};
      const c = s.change || {};
      const title = s.subject === "deployment"
        ? link("#/deployment/" + encodeURIComponent(s.uid), (d.service || "") + " " + (d.version || "") + " (" + when(d.started_at) + ")")
        : (c.kind || "change") + " on " + ((c.services || []).map((x) => x.name).join(", ") || "–") + " (" + when(c.at) + ")";
      const rows = s.subject === "deployment" ? (d.changes || []) : (c.diff || []).map((x) => ({ path: x.key, before: x.before, after: x.after }));
      const diff = rows.length === 0 ? "–" : el("ul", { class: "plain diff" }, rows.map((x) => el("li", {},
        el("code", {}, x.path), ": ", el("code", {}, x.before === undefined || x.before === null ? "–" : x.before), " → ",
        el("code", {}, x.after === undefined || x.after === null ? "–" : x.after))));
      const reviewed = s.verdict
        ? el("span", { class: s.verdict.verdict === "confirmed" ? "pass" : "fail" }, s.verdict.verdict + " by " + s.verdict.by)
        : canReview ? [
          el("button", { type: "button", onclick: () => review(fingerprint, s.uid, "confirmed") }, "Confirm"), " ",
          el("button", { type: "button", onclick: () => review(fingerprint, s.uid, "rejected") }, "Reject")] : "–";
      return [String(i + 1), el("div", {}, badge(s.subject), " ", title),
        el("div", {}, percent(s.confidence_score), el("div", { class: "bar" }, el("span", { style: "width:" + Math.round(100 * (s.confidence_score || 0)) + "%" }))),
        el("ul", { class: "plain" }, (s.reasons || []).map((r) => el("li", {}, r))), diff, reviewed];
    }));
  }

  async function review(fingerprint, uid, verdict) {
    const by = prompt("Your name, for the record of this verdict:");
    if (!by) return;
    const res = await api("/v1/alerts/" + encodeURIComponent(fingerprint) + "/suspects/" + encodeURIComponent(uid) + "/verdict",
      { method: "POST", body: JSON.stringify({ verdict, by }) });
    if (res.status >= 300) alert("The verdict was not recorded: " + ((res.body && res.body.error && res.body.error.message) || res.status));
    route();
  }

  async function alertPage(fingerprint, params) {
    document.title = "deploygraph · alert " + fingerprint;
    const res = await api("/v1/alerts/" + encodeURIComponent(fingerprint) + "/suspects" + q({ starts_at: params.get("starts_at") }));
    if (res.status !== 200) return render(el("h1", {}, "Alert " + fingerprint), failure(res, "the alert"));
    const v = res.body;
    const a = v.alert;
    render(
      el("h1", {}, a.name, " ", badge(a.status)),
      el("p", {}, "On ", a.service ? link("#/service/" + encodeURIComponent(a.service) + q({ environment: a.environment, cluster: a.cluster }), a.service) : "–",
        a.environment ? " (" + a.environment + ")" : "", " · started ", when(a.starts_at),
        a.ends_at ? " · ended " + when(a.ends_at) : "", " · fingerprint ", el("code", {}, a.fingerprint),
        " · ", link("#/incident/" + encodeURIComponent(a.fingerprint) + q({ starts_at: params.get("starts_at") }), "incident review")),
      a.summary ? el("p", { id: "summary" }, el("strong", {}, "Summary: "), a.summary) : null,
      v.chaos ? el("p", { class: "warn", id: "chaos" }, "Raised by a chaos run: ", v.chaos.reason || v.chaos.run || JSON.stringify(v.chaos)) : null,
      v.attribution_pending ? el("p", { class: "muted" }, "Attribution pending: the suspects may change.") : null,
      el("h2", {}, "Suspects"),
      (v.suspects || []).length === 0
        ? el("p", { class: "muted", id: "no-suspects" }, "No recorded change is a suspect.")
        : suspectsTable(a.fingerprint, v.suspects, true),
      el("p", { class: "muted" }, "Unexplained by any recorded change: " + percent(v.unexplained)),
      el("h2", {}, "Neighbourhood"),
      neighbourhood({ kind: "alert", label: a.name }, alertLinks(v)),
      el("h2", {}, "Labels"),
      table(["Label", "Value"], Object.entries(a.labels || {}).map(([k, val]) => [el("code", {}, k), val])));
  }

  // The alert's relationships: its service, its suspects (and reviewers' verdicts on them), the
  // chaos run that raised it.
  function alertLinks(v) {
    const a = v.alert;
    const links = [];
    if (a.service) {
      links.push({ dir: "out", rel: "FIRED_ON", kind: "service", label: a.service + (a.environment ? " · " + a.environment : ""),
        href: "#/service/" + encodeURIComponent(a.service) + q({ environment: a.environment, cluster: a.cluster }) });
    }
    for (const s of v.suspects || []) {
      const d = s.deployment || {};
      const c = s.change || {};
      const verdict = s.verdict ? (s.verdict.verdict === "confirmed" ? "CAUSED" : "REJECTED") + " · " : "";
      links.push(s.subject === "deployment"
        ? { dir: "in", rel: verdict + "TRIGGERS " + (s.confidence_score || 0).toFixed(2), kind: "deployment",
          label: (d.service || "") + " " + (d.version || ""), href: "#/deployment/" + encodeURIComponent(s.uid) }
        : { dir: "in", rel: verdict + "TRIGGERS " + (s.confidence_score || 0).toFixed(2), kind: "change",
          label: (c.kind || "change") + " on " + ((c.services || []).map((x) => x.name).join(", ") || "–") });
    }
    if (v.chaos) {
      const run = v.chaos.run || {};
      links.push({ dir: "in", rel: "RAISED", kind: "chaos", label: (run.scenario || run.experiment || v.chaos.run_uid || "chaos run") + (run.verdict ? " · " + run.verdict : "") });
    }
    return links;
  }

  async function deploymentPage(uid) {
    document.title = "deploygraph · " + uid;
    const path = "/v1/deployments/" + encodeURIComponent(uid);
    const [dep, canary, snapshot, attributed, chaos] = await Promise.all([
      api(path), api(path + "/canary"), api(path + "/snapshot"), api(path + "/alerts"),
      api("/v1/chaos/runs" + q({ deployment: uid }))]);
    if (dep.status !== 200) return render(el("h1", {}, uid), failure(dep, "the deployment"));
    const d = dep.body;
    // The images it replaced: those of the deployment it follows.
    const previous = d.follows ? await api("/v1/deployments/" + encodeURIComponent(d.follows)) : { status: 0 };
    const image = (i) => i.repository + (i.tag ? ":" + i.tag : "") + (i.digest ? "@" + i.digest : "");
    const before = previous.status === 200 ? (previous.body.images || []).map(image) : null;
    const after = (d.images || []).map(image);
    const imageChanges = before === null ? [] : [
      ...before.filter((i) => !after.includes(i)).map((i) => ["removed", i]),
      ...after.filter((i) => !before.includes(i)).map((i) => ["added", i])];
    const analyses = (canary.status === 200 && canary.body.analyses) || [];
    const rollbacks = (canary.status === 200 && canary.body.rollbacks) || [];
    const alerts = (attributed.status === 200 && attributed.body.items) || [];
    const runs = (chaos.status === 200 && chaos.body.items) || [];
    const snap = snapshot.status === 200 && snapshot.body ? snapshot.body : null;
    const links = [
      { dir: "out", rel: "DEPLOYS", kind: "service", label: d.service + " · " + d.environment,
        href: "#/service/" + encodeURIComponent(d.service) + q({ environment: d.environment, namespace: d.namespace, cluster: d.cluster || "default" }) },
      d.follows ? { dir: "out", rel: "FOLLOWS", kind: "deployment", label: d.follows, href: "#/deployment/" + encodeURIComponent(d.follows) } : null,
      d.commit ? { dir: "out", rel: "BUILT_FROM", kind: "commit", label: d.commit.sha } : null,
      ...(d.images || []).map((i) => ({ dir: "out", rel: "RUNS", kind: "image", label: i.repository + (i.tag ? ":" + i.tag : "") })),
      (d.changes || []).length ? { dir: "out", rel: "CHANGED", kind: "change", label: d.changes.length + " config change" + (d.changes.length === 1 ? "" : "s") } : null,
      ...alerts.map((x) => ({ dir: "out", rel: "TRIGGERS " + (x.confidence_score || 0).toFixed(2), kind: "alert",
        label: x.alert.name + " (" + when(x.alert.starts_at) + ")", href: "#/alert/" + encodeURIComponent(x.alert.fingerprint) + q({ starts_at: x.alert.starts_at }) })),
      snap ? { dir: "in", rel: "TAKEN_FOR", kind: "snapshot", label: (snap.verdict || "") + " · " + when(snap.taken_at) } : null,
      ...runs.map((r) => ({ dir: "in", rel: "AGAINST", kind: "chaos", label: r.scenario + " · " + r.verdict })),
      ...analyses.map((x) => ({ dir: "in", rel: "ANALYZED", kind: "canary", label: x.verdict + " · " + when(x.decided_at) })),
      ...rollbacks.map((r) => ({ dir: "in", rel: "UNDID", kind: "rollback", label: "by " + r.by + " · " + when(r.at) })),
    ].filter(Boolean);
    render(
      el("h1", {}, d.service, " ", d.version || "", " ", badge(d.status)),
      table(["Field", "Value"], [
        ["Service", link("#/service/" + encodeURIComponent(d.service) + q({ environment: d.environment, cluster: d.cluster || "default" }), d.service)],
        ["Environment", d.environment + (d.namespace ? " / " + d.namespace : "")],
        ["Started", when(d.started_at)], ["Finished", when(d.finished_at)],
        ["Commit", d.commit ? el("code", {}, d.commit.sha) : "–"],
        ["Images", (d.images || []).map((i) => el("div", {}, el("code", {}, i.repository + (i.tag ? ":" + i.tag : "") + (i.digest ? "@" + i.digest : ""))))],
        ["By", d.actor || "–"], ["Source", d.source || "–"],
        ["Follows", d.follows ? link("#/deployment/" + encodeURIComponent(d.follows), d.follows) : "–"],
        ["uid", el("code", {}, d.uid)]]),
      el("h2", {}, "What changed"),
      changesTable(d.changes),
      before === null ? null : imageChanges.length === 0
        ? el("p", { class: "muted", id: "images-unchanged" }, "Same images as the deployment it follows.")
        : el("div", { id: "image-changes" }, table(["Image", "Against the deployment it follows"],
          imageChanges.map(([what, i]) => [el("code", {}, i), el("span", { class: what === "added" ? "pass" : "fail" }, what)]))),
      (d.validation || []).length ? [el("h2", {}, "Validation"), table(["Check", "Result", "Message"],
        d.validation.map((x) => [x.name || x.check || "–", badge(x.status || x.result), x.message || ""]))] : null,
      el("h2", {}, "Infra snapshot"),
      snap
        ? el("p", {}, badge(snap.verdict), " taken ", when(snap.taken_at), " · ", (snap.checks || []).length, " checks")
        : el("p", { class: "muted" }, "None taken for it."),
      el("h2", {}, "Alerts attributed to it"),
      alerts.length === 0
        ? el("p", { class: "muted", id: "no-attributed" }, "No alert has it as a suspect.")
        : el("div", { id: "attributed" }, table(["Alert", "Started", "Status", "Suspect", "Confidence", "Review"], alerts.map((x) => [
          link("#/alert/" + encodeURIComponent(x.alert.fingerprint) + q({ starts_at: x.alert.starts_at }), x.alert.name),
          when(x.alert.starts_at), badge(x.alert.status), "#" + x.rank + " of " + x.suspects, percent(x.confidence_score),
          x.verdict ? el("span", { class: x.verdict.verdict === "confirmed" ? "pass" : "fail" }, x.verdict.verdict + " by " + x.verdict.by) : "–"]))),
      attributed.status === 200 && attributed.body.truncated ? el("p", { class: "muted" }, "Only the newest alerts are shown.") : null,
      el("h2", {}, "Chaos runs against it"),
      runs.length === 0 ? el("p", { class: "muted" }, "None.") : table(["Started", "Scenario", "Verdict", "Probes passed", "Phase"],
        runs.map((r) => [when(r.started_at), r.scenario, badge(r.verdict),
          typeof r.probe_success_pct === "number" ? r.probe_success_pct.toFixed(0) + " %" : "–", r.phase])),
      el("h2", {}, "Canary analyses"),
      analyses.length === 0 ? el("p", { class: "muted" }, "None.") : table(["Decided", "Verdict", "Baseline", "Rule"],
        analyses.map((x) => [when(x.decided_at), badge(x.verdict), x.baseline_kind, x.rule])),
      rollbacks.length ? [el("h2", {}, "Rollbacks"), table(["At", "By", "Dry run", "Reason"],
        rollbacks.map((r) => [when(r.at), r.by, r.dry_run ? "yes" : "no", r.reason]))] : null,
      el("h2", {}, "Neighbourhood"),
      neighbourhood({ kind: "deployment", label: d.service + " " + (d.version || d.uid) }, links));
  }

  async function askPage(question) {
    document.title = "deploygraph · ask";
    document.getElementById("ask-q").value = question;
    if (!question.trim()) return render(el("h1", {}, "Ask"), el("p", { class: "muted" }, "Type a question above."));
    const res = await api("/v1/ask" + q({ q: question }));
    if (res.status === 422 && res.body && res.body.forms) {
      return render(el("h1", {}, "Ask"),
        el("p", { class: "error", id: "not-understood" }, res.body.error.message),
        el("h2", {}, "Questions understood"), el("ul", {}, res.body.forms.map((f) => el("li", {}, el("code", {}, f)))),
        (res.body.closest_services || []).length ? [el("h2", {}, "Closest services"),
          el("ul", {}, res.body.closest_services.map((s) => el("li", {}, link("#/service/" + encodeURIComponent(s), s))))] : null);
    }
    if (res.status !== 200) return render(el("h1", {}, "Ask"), failure(res, "the answer"));
    const b = res.body;
    const u = b.understood;
    let answer;
    if (b.answer === null) answer = el("p", { class: "muted" }, b.note || "Nothing matches the question.");
    else if (u.intent === "suspects") answer = [el("p", {}, "Alert ", link("#/alert/" + encodeURIComponent(b.answer.alert.fingerprint), b.answer.alert.name + " " + b.answer.alert.fingerprint)), suspectsTable(b.answer.alert.fingerprint, b.answer.suspects || [], false)];
    else if (u.intent === "deployments") answer = table(["Started", "Service", "Environment", "Status", "Version"], (b.answer.items || []).map((d) => [when(d.started_at), d.service, d.environment, badge(d.status), link("#/deployment/" + encodeURIComponent(d.uid), d.version || d.uid)]));
    else if (u.intent === "alerts") answer = table(["Started", "Name", "Service", "Status", "Summary"], (b.answer.items || []).map((a) => [when(a.starts_at), link("#/alert/" + encodeURIComponent(a.fingerprint), a.name), a.service || "–", badge(a.status), a.summary || ""]));
    else if (u.intent === "timeline") answer = table(["When", "Kind", "What"], (b.answer.events || []).map((e) => [when(e.at), badge(e.kind), eventLink(e)]));
    else answer = el("pre", {}, JSON.stringify(b.answer, null, 2));
    render(
      el("h1", {}, "Ask"),
      el("p", { id: "understood" }, el("strong", {}, "Understood as: "), b.understood_as),
      el("p", { class: "muted" }, "Same as ", link(b.endpoint, "GET " + b.endpoint)),
      el("div", { id: "answer" }, answer),
      el("h2", {}, "Cypher (read-only, for Neo4j)"),
      el("pre", { id: "cypher" }, b.cypher.query + "\n\nparams: " + JSON.stringify(b.cypher.params)));
  }


  // --- a node's neighbourhood in the graph -------------------------------------------------

  // One node of the graph and the relationships around it, drawn as SVG: the nodes pointing at
  // it on the left, those it points at on the right, each edge named as in the graph (DEPLOYS,
  // TRIGGERS, AGAINST…). `links` are {dir: "in"|"out", rel, kind, label, href}; at most
  // NEIGHBOURS a side are drawn, the rest counted in a last node.
  const NEIGHBOURS = 12;
  function neighbourhood(center, links) {
    const sides = { in: links.filter((l) => l.dir === "in"), out: links.filter((l) => l.dir !== "in") };
    for (const [dir, list] of Object.entries(sides)) {
      if (list.length > NEIGHBOURS) {
        const rest = list.length - (NEIGHBOURS - 1);
        sides[dir] = list.slice(0, NEIGHBOURS - 1).concat([{ dir, rel: "…", kind: "more", label: rest + " more" }]);
      }
    }
    const W = 260, H = 52, GAP = 170;
    const rows = Math.max(1, sides.in.length, sides.out.length);
    const width = 3 * W + 2 * GAP, height = rows * H + 20;
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "diagram graph", role: "img",
      "aria-label": "the neighbourhood of " + center.label });
    const defs = svgEl("defs", {});
    const marker = svgEl("marker", { id: "arrow", viewBox: "0 0 10 10", refX: 10, refY: 5, markerWidth: 7, markerHeight: 7, orient: "auto-start-reverse" });
    marker.appendChild(svgEl("path", { d: "M 0 0 L 10 5 L 0 10 z", fill: "#9aa4af" }));
    defs.appendChild(marker);
    svg.appendChild(defs);
    const fills = { deployment: "#eaf1fb", service: "#eef4fb", alert: "#fde8e7", change: "#f1edfd", chaos: "#fef0e6",
      canary: "#e7f6ee", snapshot: "#f4f6f8", rollback: "#fde8e7", commit: "#f4f6f8", image: "#f4f6f8", more: "#ffffff" };
    const box = (n, x, y, cls) => {
      const g = svgEl("g", { class: "node " + (n.kind || "") + (cls ? " " + cls : ""), "data-kind": n.kind || "" });
      g.appendChild(svgEl("rect", { x, y, width: W, height: 40, rx: 8, fill: fills[n.kind] || "#f4f6f8", stroke: cls ? "#0b5cad" : "#9aa4af",
        "stroke-width": cls ? 2 : 1 }));
      const label = String(n.label || "");
      g.appendChild(svgEl("text", { x: x + W / 2, y: y + 17, "text-anchor": "middle", class: "kind" }, n.kind || ""));
      g.appendChild(svgEl("text", { x: x + W / 2, y: y + 33, "text-anchor": "middle", class: "node" },
        label.length > 32 ? label.slice(0, 31) + "…" : label));
      const title = svgEl("title", {}, (n.kind ? n.kind + ": " : "") + label);
      g.appendChild(title);
      if (!n.href) return g;
      const a = svgEl("a", { href: n.href });
      a.appendChild(g);
      return a;
    };
    const cy = height / 2 - 20;
    const cx = W + GAP;
    for (const [dir, list] of Object.entries(sides)) {
      list.forEach((n, i) => {
        const x = dir === "in" ? 0 : 2 * (W + GAP);
        const y = 10 + i * H + (rows - list.length) * H / 2;
        const [x1, y1, x2, y2] = dir === "in" ? [x + W, y + 20, cx, cy + 20] : [cx + W, cy + 20, x, y + 20];
        svg.appendChild(svgEl("line", { x1, y1, x2, y2, stroke: "#9aa4af", "stroke-width": 1.5, "marker-end": "url(#arrow)",
          "stroke-dasharray": n.dashed ? "5 4" : "" }));
        const lx = dir === "in" ? x1 + 8 : x2 - 8;
        svg.appendChild(svgEl("text", { x: lx, y: (dir === "in" ? y1 : y2) - 5, "text-anchor": dir === "in" ? "start" : "end", class: "edge" }, n.rel));
        svg.appendChild(box(n, x, y));
      });
    }
    svg.appendChild(box(center, cx, cy, "center"));
    return el("div", { id: "graph" }, svg);
  }

  // --- the incident review, and its diagram ------------------------------------------------

  // The report's Mermaid flowchart (the subset deploygraph writes: `id["…"]`, `id{{"…"}}`,
  // `id(["…"])` nodes; `a -- L --> b`, `a -. "L" .-> b`, `a ==>|"L"| b`, `a --x|"L"| b` edges)
  // drawn as SVG: suspects on the left, the alert in the middle, services on the right.
  function diagram(source) {
    const nodes = new Map();
    const edges = [];
    for (const raw of source.split("\n")) {
      const line = raw.trim();
      let m = line.match(/^(\w+)\s*(\{\{|\(\[|\[)"(.*)"(\}\}|\]\)|\])$/);
      if (m) { nodes.set(m[1], { id: m[1], label: m[3], shape: m[2] }); continue; }
      m = line.match(/^(\w+)\s+--\s+(.+?)\s+-->\s+(\w+)$/)
        || line.match(/^(\w+)\s+-\.\s+"(.*)"\s+\.->\s+(\w+)$/)
        || line.match(/^(\w+)\s+(?:==>|--x|-->)\|"(.*)"\|\s+(\w+)$/);
      if (m) edges.push({ from: m[1], label: m[2], to: m[3], dashed: line.includes("-.") });
    }
    const column = (id) => (id.startsWith("alert_") ? 1 : id.startsWith("svc_") ? 2 : 0);
    const columns = [[], [], []];
    for (const n of nodes.values()) columns[column(n.id)].push(n);
    const W = 300, H = 64, GAP = 130;
    const rows = Math.max(1, ...columns.map((c) => c.length));
    const width = 3 * W + 2 * GAP, height = rows * H + 20;
    columns.forEach((c, i) => c.forEach((n, j) => {
      n.x = i * (W + GAP);
      n.y = 10 + j * H + (rows - c.length) * H / 2;
    }));
    const svg = svgEl("svg", { viewBox: `0 0 ${width} ${height}`, class: "diagram", role: "img", "aria-label": "the incident's graph" });
    for (const e of edges) {
      const a = nodes.get(e.from), b = nodes.get(e.to);
      if (!a || !b) continue;
      const [x1, y1] = a.x <= b.x ? [a.x + W - 10, a.y + 22] : [a.x + 10, a.y + 22];
      const [x2, y2] = a.x <= b.x ? [b.x + 10, b.y + 22] : [b.x + W - 10, b.y + 22];
      svg.appendChild(svgEl("line", { x1, y1, x2, y2, stroke: "#9aa4af", "stroke-width": 1.5, "stroke-dasharray": e.dashed ? "5 4" : "" }));
      svg.appendChild(svgEl("text", { x: (x1 + x2) / 2, y: (y1 + y2) / 2 - 4, "text-anchor": "middle", class: "edge" }, e.label));
    }
    for (const n of nodes.values()) {
      const fill = n.id.startsWith("alert_") ? "#fde8e7" : n.id.startsWith("svc_") ? "#eef4fb" : n.id.startsWith("chaos_") ? "#fef0e6" : "#f1edfd";
      svg.appendChild(svgEl("rect", { x: n.x + 10, y: n.y, width: W - 20, height: 44, rx: n.shape === "[" ? 4 : 20, fill, stroke: "#9aa4af" }));
      svg.appendChild(svgEl("text", { x: n.x + W / 2, y: n.y + 27, "text-anchor": "middle", class: "node" },
        n.label.length > 42 ? n.label.slice(0, 41) + "…" : n.label));
    }
    return svg;
  }

  async function incidentPage(fingerprint, params) {
    document.title = "deploygraph · incident " + fingerprint;
    const query = { alert: fingerprint, starts_at: params.get("starts_at") };
    const res = await api("/v1/reports/incident" + q(Object.assign({ format: "json" }, query)));
    if (res.status !== 200) return render(el("h1", {}, "Incident review"), failure(res, "the incident review"));
    const r = res.body;
    const a = r.suspects.alert;
    const download = async () => {
      const md = await fetch("/v1/reports/incident" + q(Object.assign({ format: "markdown" }, query)),
        { headers: token() ? { Authorization: "Bearer " + token() } : {} });
      const blob = new Blob([await md.text()], { type: "text/markdown" });
      const href = URL.createObjectURL(blob);
      const anchor = el("a", { href, download: "incident-" + fingerprint + ".md" });
      document.body.appendChild(anchor);
      anchor.click();
      anchor.remove();
      URL.revokeObjectURL(href);
    };
    render(
      el("h1", {}, "Incident review: ", a.name, " ", badge(a.status)),
      el("p", { class: "no-print" },
        el("button", { type: "button", onclick: () => window.print() }, "Print"), " ",
        el("button", { type: "button", id: "download", onclick: download }, "Download Markdown"), " ",
        link("#/alert/" + encodeURIComponent(fingerprint), "back to the alert")),
      el("p", {}, "On ", a.service || "–", a.environment ? " (" + a.environment + ")" : "", " · started ", when(a.starts_at),
        a.ends_at ? " · ended " + when(a.ends_at) : ""),
      a.summary ? el("p", {}, el("strong", {}, "Summary: "), a.summary) : null,
      el("h2", {}, "Graph"),
      el("div", { id: "diagram" }, diagram(r.mermaid || "")),
      el("h2", {}, "Suspects"),
      (r.suspects.suspects || []).length ? suspectsTable(fingerprint, r.suspects.suspects, false) : el("p", { class: "muted" }, "No recorded change is a suspect."),
      el("h2", {}, "Timeline"),
      table(["When", "Kind", "What"], ((r.timeline && r.timeline.events) || []).map((e) => [when(e.at), badge(e.kind), eventLink(e)])),
      el("h2", {}, "Infra snapshot before the alert"),
      r.snapshot ? el("p", {}, badge(r.snapshot.verdict), " taken ", when(r.snapshot.taken_at)) : el("p", { class: "muted" }, "None."),
      (r.canary_analyses || []).length ? [el("h2", {}, "Canary analyses"), table(["Decided", "Verdict", "Rule"],
        r.canary_analyses.map((x) => [when(x.decided_at), badge(x.verdict), x.rule]))] : null,
      (r.chaos_history || []).length ? [el("h2", {}, "Chaos runs"), table(["Started", "Scenario", "Verdict"],
        r.chaos_history.map((c) => [when(c.started_at), c.scenario, badge(c.verdict)]))] : null);
  }

  // --- wiring -------------------------------------------------------------------------------

  document.getElementById("ask").addEventListener("submit", (ev) => {
    ev.preventDefault();
    const question = document.getElementById("ask-q").value.trim();
    if (question) location.hash = "#/ask" + q({ q: question });
  });
  document.getElementById("token-button").addEventListener("click", () => {
    const t = prompt("Bearer token for this server (kept for this tab only; empty to forget it):", "");
    if (t === null) return;
    try { if (t) sessionStorage.setItem(TOKEN_KEY, t); else sessionStorage.removeItem(TOKEN_KEY); } catch (_) { /* private mode */ }
    route();
  });
  window.addEventListener("hashchange", route);
  route();
})();
