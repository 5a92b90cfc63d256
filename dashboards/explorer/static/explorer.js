// taoflow explorer: two small conveniences, no framework, nothing required for reading a page.
//  1. Clicking (or Enter on) an element `.hash[data-full]` copies the full value; the element
//     gets the class `copied` (or `copy-failed`) for a moment.
//  2. Each `table.filterable` gets a filter box just before it (`input.table-filter`
//     with `data-filter-for="<table id>"`) that hides body rows not containing the text.
// It must never throw on a page without these elements, and it writes no inline styles
// (the page's Content-Security-Policy forbids them): state is shown with classes and `hidden`.
"use strict";

(function () {
  var FLASH_MS = 1200; // how long `copied` / `copy-failed` stays on a hash
  var FILTER_DELAY_MS = 80; // typing pause before rows are filtered
  var FILTER_TEXT_MAX = 200; // characters of filter text considered

  function flash(element, className) {
    element.classList.remove("copied", "copy-failed");
    element.classList.add(className);
    window.setTimeout(function () {
      element.classList.remove(className);
    }, FLASH_MS);
  }

  function copyWithSelection(text) {
    var area = document.createElement("textarea");
    area.value = text;
    area.setAttribute("readonly", "");
    area.className = "offscreen";
    document.body.appendChild(area);
    area.select();
    var copied = false;
    try {
      copied = document.execCommand("copy");
    } catch (error) {
      copied = false;
    }
    document.body.removeChild(area);
    return copied;
  }

  function copyHash(element) {
    var text = element.getAttribute("data-full") || "";
    if (navigator.clipboard && window.isSecureContext) {
      navigator.clipboard.writeText(text).then(
        function () { flash(element, "copied"); },
        function () { flash(element, copyWithSelection(text) ? "copied" : "copy-failed"); }
      );
      return;
    }
    flash(element, copyWithSelection(text) ? "copied" : "copy-failed");
  }

  function hashOf(target) {
    return target && target.closest ? target.closest(".hash[data-full]") : null;
  }

  function setUpHashes() {
    var hashes = document.querySelectorAll(".hash[data-full]");
    for (var i = 0; i < hashes.length; i += 1) {
      hashes[i].setAttribute("tabindex", "0");
      hashes[i].setAttribute("role", "button");
      if (!hashes[i].getAttribute("title")) {
        hashes[i].setAttribute("title", "click to copy");
      }
    }
    document.addEventListener("click", function (event) {
      var element = hashOf(event.target);
      if (element && !event.target.closest("a")) {
        copyHash(element);
      }
    });
    document.addEventListener("keydown", function (event) {
      var element = hashOf(event.target);
      if (element && event.key === "Enter") {
        event.preventDefault();
        copyHash(element);
      }
    });
  }

  function setUpFilter(table, index) {
    var body = table.tBodies.length ? table.tBodies[0] : null;
    if (!body || !table.parentNode) {
      return;
    }
    var rows = Array.prototype.slice.call(body.rows);
    var texts = rows.map(function (row) { return row.textContent.toLowerCase(); });
    var name = table.id || "table-" + index;
    var input = document.createElement("input");
    input.type = "search";
    input.className = "table-filter";
    input.placeholder = "filter rows…";
    input.setAttribute("aria-label", "filter the rows of " + name);
    input.setAttribute("data-filter-for", name);
    input.maxLength = FILTER_TEXT_MAX;
    var count = document.createElement("span");
    count.className = "filter-count";
    count.setAttribute("aria-live", "polite");
    var timer = null;

    function apply() {
      var needle = input.value.trim().toLowerCase().slice(0, FILTER_TEXT_MAX);
      var shown = 0;
      for (var i = 0; i < rows.length; i += 1) {
        var keep = needle === "" || texts[i].indexOf(needle) !== -1;
        rows[i].hidden = !keep;
        shown += keep ? 1 : 0;
      }
      count.textContent = needle === "" ? "" : shown + " of " + rows.length + " rows";
    }

    input.addEventListener("input", function () {
      window.clearTimeout(timer);
      timer = window.setTimeout(apply, FILTER_DELAY_MS);
    });
    table.parentNode.insertBefore(input, table);
    table.parentNode.insertBefore(count, table);
  }

  function setUp() {
    setUpHashes();
    var tables = document.querySelectorAll("table.filterable");
    for (var i = 0; i < tables.length; i += 1) {
      setUpFilter(tables[i], i);
    }
  }

  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", setUp);
  } else {
    setUp();
  }
})();
