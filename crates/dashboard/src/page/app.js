"use strict";
// The status page's only script: it receives snapshots over Server-Sent Events
// and renders them. Text from decisions is only ever set as textContent.
(function () {
  var snapshot = null;
  var receivedAt = 0;
  var seen = Object.create(null);
  var firstRender = true;

  function byId(id) { return document.getElementById(id); }

  function el(tag, className, text) {
    var node = document.createElement(tag);
    if (className) node.className = className;
    if (text !== undefined && text !== null) node.textContent = String(text);
    return node;
  }

  function setText(id, text) { byId(id).textContent = text; }

  function plural(n, one, many) { return n + " " + (n === 1 ? one : many); }

  function formatAge(secs) {
    if (!isFinite(secs) || secs < 0) secs = 0;
    secs = Math.floor(secs);
    if (secs < 60) return secs + "s";
    var mins = Math.floor(secs / 60);
    if (mins < 60) return mins + "m " + (secs % 60) + "s";
    var hours = Math.floor(mins / 60);
    if (hours < 24) return hours + "h " + (mins % 60) + "m";
    return Math.floor(hours / 24) + "d " + (hours % 24) + "h";
  }

  function formatMs(ms) {
    if (ms === null || ms === undefined) return "–";
    if (ms < 1000) return ms + " ms";
    return (ms / 1000).toFixed(ms < 10000 ? 2 : 1) + " s";
  }

  function formatUsd(usd) {
    if (usd === 0) return "$0.00";
    if (usd < 1) return "$" + usd.toFixed(4);
    return "$" + usd.toFixed(2);
  }

  // Ages are counted from the server's clock (generated_at), so a skewed
  // laptop clock does not matter.
  function ageOf(decidedAt) {
    var at = Date.parse(decidedAt);
    var generated = Date.parse(snapshot.generated_at);
    return (generated - at) / 1000 + (Date.now() - receivedAt) / 1000;
  }

  function renderFigures(f, queue) {
    setText("f-rate", f.decisions_per_minute.toFixed(1));
    setText("f-rate-sub", "last " + f.rate_window_minutes + " min · " + plural(f.decisions_today, "decision", "decisions") + " today");

    setText("f-p95", formatMs(f.p95_decision_ms));
    setText("f-p95-sub", f.n_latency_samples ? plural(f.n_latency_samples, "decision", "decisions") + " · last " + f.latency_window_minutes + " min" : "no decision in the last " + f.latency_window_minutes + " min");

    setText("f-cost", formatUsd(f.cost_today_usd));
    var perDecision = f.decisions_today ? formatUsd(f.cost_today_usd / f.decisions_today) + " per decision" : "no decision today";
    setText("f-cost-sub", f.n_unpriced_today ? perDecision + " · " + f.n_unpriced_today + " unpriced" : perDecision);

    setText("f-cache", f.cache_hit_ratio === null ? "–" : Math.round(f.cache_hit_ratio * 100) + "%");
    setText("f-cache-sub", f.decisions_today ? f.cached_today + " of " + f.decisions_today + " today" + (f.overrides_today ? " · " + plural(f.overrides_today, "override", "overrides") : "") : "no decision today");

    var queueCard = byId("f-queue").parentNode;
    if (queue.messages === null) {
      setText("f-queue", "–");
    } else {
      setText("f-queue", String(queue.messages));
    }
    if (queue.error) {
      queueCard.classList.add("warn");
      setText("f-queue-sub", queue.error);
      byId("f-queue-sub").title = queue.error;
    } else {
      queueCard.classList.remove("warn");
      setText("f-queue-sub", queue.consumers === null ? queue.name : "waiting · " + plural(queue.consumers, "worker", "workers") + " consuming");
      byId("f-queue-sub").title = queue.name;
    }
  }

  function riskCell(row) {
    var cell = el("td", "risk");
    if (row.approval) {
      var head = el("span", "risk-head", "Human decision by " + row.approval.by);
      cell.appendChild(head);
      cell.appendChild(el("span", "note", row.approval.reason));
      return cell;
    }
    if (row.top_risk) {
      var line = el("span", "risk-head");
      line.appendChild(el("span", "sev " + row.top_risk.severity, row.top_risk.severity));
      line.appendChild(document.createTextNode(row.top_risk.category));
      if (row.n_risks > 1) line.appendChild(el("span", "muted", " +" + (row.n_risks - 1) + " more"));
      cell.appendChild(line);
      var detail = el("span", "risk-detail", row.top_risk.detail);
      detail.title = row.top_risk.detail;
      cell.appendChild(detail);
    } else {
      cell.appendChild(el("span", "muted", "no risk found"));
    }
    return cell;
  }

  function renderRow(row) {
    var key = row.event_id + "|" + row.decided_at + "|" + (row.approval ? row.approval.by : "");
    var tr = el("tr");
    tr.dataset.eventId = row.event_id;
    tr.dataset.recommendation = row.recommendation;
    if (row.approval) tr.dataset.human = "true";
    if (row.superseded_by) tr.className = "superseded";
    if (!firstRender && !seen[key]) tr.classList.add("fresh");
    seen[key] = true;
    tr.title = row.summary;

    var age = el("td", "age", formatAge(ageOf(row.decided_at)));
    age.dataset.decidedAt = row.decided_at;
    age.title = row.decided_at;
    tr.appendChild(age);

    tr.appendChild(el("td", "repo", row.repo));

    var commit = el("td", "commit");
    var code = el("code", null, row.head_short);
    code.title = row.head;
    commit.appendChild(code);
    tr.appendChild(commit);

    var score = el("td", "score num");
    var wrap = el("div", "score-wrap");
    var meter = el("span", "meter " + row.recommendation);
    var fill = el("span");
    fill.style.width = Math.max(2, Math.min(100, row.risk_score)) + "%";
    meter.appendChild(fill);
    wrap.appendChild(meter);
    wrap.appendChild(el("span", "score-value", row.risk_score));
    score.appendChild(wrap);
    tr.appendChild(score);

    var rec = el("td", "rec");
    rec.appendChild(el("span", "pill " + row.recommendation, row.recommendation));
    if (row.approval) {
      rec.appendChild(el("span", "tag human", "override · was " + row.approval.superseded));
    } else if (row.superseded_by) {
      rec.appendChild(el("span", "tag human", "overridden by " + row.superseded_by));
    }
    if (row.cached) rec.appendChild(el("span", "tag", "cached"));
    tr.appendChild(rec);

    tr.appendChild(riskCell(row));
    return tr;
  }

  function render() {
    renderFigures(snapshot.figures, snapshot.queue);
    var body = byId("rows");
    var rows = snapshot.decisions;
    var fragment = document.createDocumentFragment();
    if (rows.length === 0) {
      var empty = el("tr", "empty");
      var td = el("td", null, snapshot.log.caught_up ? "No decision in the log yet." : "Reading the decisions log…");
      td.colSpan = 6;
      empty.appendChild(td);
      fragment.appendChild(empty);
    }
    for (var i = 0; i < rows.length; i++) fragment.appendChild(renderRow(rows[i]));
    body.replaceChildren(fragment);
    firstRender = false;

    var log = snapshot.log;
    setText("log-state", (log.caught_up ? "live" : "catching up") + " · " + log.name + " · showing " + rows.length + " of the last " + snapshot.capacity);
    setText("footer", "Updated " + new Date(receivedAt).toLocaleTimeString() + " · scores 0–100 · ages count from the decision · the page reconnects by itself");
  }

  function tick() {
    if (!snapshot) return;
    var cells = document.querySelectorAll("td.age");
    for (var i = 0; i < cells.length; i++) {
      cells[i].textContent = formatAge(ageOf(cells[i].dataset.decidedAt));
    }
    if (Date.now() - receivedAt > 15000) setConn("stale", "no update for " + formatAge((Date.now() - receivedAt) / 1000));
  }

  function setConn(state, text) {
    var conn = byId("conn");
    conn.dataset.state = state;
    setText("conn-text", text);
  }

  var source = new EventSource("events");
  source.addEventListener("snapshot", function (event) {
    snapshot = JSON.parse(event.data);
    receivedAt = Date.now();
    render();
    setConn("live", "live");
  });
  source.addEventListener("error", function () {
    setConn("reconnecting", "reconnecting…");
  });
  setInterval(tick, 1000);
})();
