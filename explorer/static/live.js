// Live home page: applies each block from /api/live (server-sent events) without a reload.
"use strict";
(function () {
  var ROWS = 10;
  var blocks = document.getElementById("latest-blocks");
  var extrinsics = document.getElementById("latest-extrinsics");
  if (!blocks || !window.EventSource) return;

  function short(text) {
    var keep = text.indexOf("0x") === 0 ? 6 : 4;
    return text.length <= 2 * keep + 3 ? text : text.slice(0, keep) + "\u2026" + text.slice(-4);
  }
  function pad(n) { return (n < 10 ? "0" : "") + n; }
  // Same shape as the server's time cell: <span class="date">YYYY-MM-DD </span>HH:MM:SS UTC
  function utc(ms) {
    var d = new Date(ms);
    var frag = document.createDocumentFragment();
    var date = document.createElement("span");
    date.className = "date";
    date.textContent = d.getUTCFullYear() + "-" + pad(d.getUTCMonth() + 1) + "-" + pad(d.getUTCDate()) + " ";
    frag.appendChild(date);
    frag.appendChild(document.createTextNode(
      pad(d.getUTCHours()) + ":" + pad(d.getUTCMinutes()) + ":" + pad(d.getUTCSeconds()) + " UTC"));
    return frag;
  }
  function link(href, text, cls, title) {
    var a = document.createElement("a");
    a.href = href;
    a.textContent = text;
    if (cls) a.className = cls;
    if (title) a.title = title;
    return a;
  }
  function cell(row, content, cls) {
    var td = document.createElement("td");
    if (cls) td.className = cls;
    if (typeof content === "string") td.textContent = content; else td.appendChild(content);
    row.appendChild(td);
  }
  function badge(ok) {
    var s = document.createElement("span");
    s.className = "badge " + (ok ? "ok" : "fail");
    s.textContent = ok ? "success" : "failed";
    return s;
  }
  function prepend(tbody, row) {
    row.className = "fresh";
    tbody.insertBefore(row, tbody.firstChild);
    while (tbody.rows.length > ROWS) tbody.deleteRow(tbody.rows.length - 1);
  }
  function setHeight(key, n) {
    var el = document.querySelector('[data-live="' + key + '"]');
    if (!el || n === null || n === undefined) return;
    el.textContent = "";
    el.appendChild(link("/block/" + n, "#" + n));
  }

  // The newest block on the page; the stream replays anything newer, then follows.
  var newest = -1;
  var first = blocks.querySelector("tr td a");
  if (first) newest = Number(first.textContent.replace("#", ""));
  var source = new EventSource("/api/live" + (newest >= 0 ? "?after=" + newest : ""));
  source.addEventListener("block", function (message) {
    var live = JSON.parse(message.data);
    var b = live.block;
    if (b.number <= newest) return;
    newest = b.number;
    setHeight("final-height", live.finalHeight);
    setHeight("best-height", live.bestHeight);
    setHeight("indexed-height", b.number);
    var count = document.querySelector('[data-live="extrinsic-count"]');
    if (count) count.textContent = String(Number(count.textContent) + live.extrinsics.length);
    var status = document.querySelector('[data-live="node-status"]');
    if (status) { status.textContent = ""; status.appendChild(badge(true)).textContent = "following"; }

    var row = document.createElement("tr");
    cell(row, link("/block/" + b.number, "#" + b.number));
    cell(row, link("/block/" + b.hash, short(b.hash), null, b.hash), "mono hide-narrow hash");
    cell(row, String(b.extrinsicCount));
    cell(row, link("/account/" + b.proposer, short(b.proposer), "mono", b.proposer), "hide-narrow");
    cell(row, utc(b.timestampMs), "time");
    prepend(blocks, row);

    live.extrinsics.forEach(function (x) {
      var r = document.createElement("tr");
      cell(r, link("/extrinsic/" + x.hash, short(x.hash), "mono", x.hash));
      cell(r, link("/block/" + x.blockNumber, "#" + x.blockNumber));
      var call = document.createElement("span");
      call.className = "call";
      call.textContent = x.pallet + "." + x.callName;
      cell(r, call);
      cell(r, link("/account/" + x.signer, short(x.signer), "mono", x.signer), "hide-narrow signer");
      cell(r, badge(x.success));
      prepend(extrinsics, r);
    });
  });
  source.onerror = function () {
    var status = document.querySelector('[data-live="node-status"]');
    if (status) { status.textContent = ""; status.appendChild(badge(false)).textContent = "reconnecting"; }
  };
})();
