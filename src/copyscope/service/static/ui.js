/* copyscope web UI: drag and drop onto file inputs, the upload size check, and
   readable messages for failed htmx requests. No framework; htmx does the rest. */
(function () {
  "use strict";

  function size(n) {
    var units = ["bytes", "KB", "MB", "GB"], i = 0;
    while (n >= 1000 && i < units.length - 1) { n /= 1000; i += 1; }
    return i === 0 ? n + " bytes" : n.toFixed(1) + " " + units[i];
  }

  function flash(message) {
    var box = document.getElementById("flash");
    if (!box) { return; }
    box.textContent = message;
    box.hidden = !message;
    if (message) { box.scrollIntoView({block: "nearest"}); }
  }

  function describe(input, out) {
    if (!out) { return; }
    var files = input.files, total = 0, names = [];
    for (var i = 0; i < files.length; i += 1) {
      total += files[i].size;
      if (i < 5) { names.push(files[i].name); }
    }
    out.textContent = files.length === 0 ? "" :
      files.length + (files.length === 1 ? " file" : " files") + " (" + size(total) + "): " +
      names.join(", ") + (files.length > 5 ? ", …" : "");
  }

  function setup(root) {
    var zones = root.querySelectorAll("[data-drop]");
    Array.prototype.forEach.call(zones, function (zone) {
      if (zone.dataset.ready) { return; }
      zone.dataset.ready = "1";
      var input = zone.querySelector("input[type=file]");
      var out = zone.querySelector(".drop-list");
      ["dragenter", "dragover"].forEach(function (name) {
        zone.addEventListener(name, function (e) { e.preventDefault(); zone.classList.add("over"); });
      });
      ["dragleave", "dragend", "drop"].forEach(function (name) {
        zone.addEventListener(name, function () { zone.classList.remove("over"); });
      });
      zone.addEventListener("drop", function (e) {
        e.preventDefault();
        var files = e.dataTransfer && e.dataTransfer.files;
        if (!files || files.length === 0) { return; }
        input.files = files;
        input.dispatchEvent(new Event("change", {bubbles: true}));
      });
      input.addEventListener("change", function () { flash(""); describe(input, out); });
    });
  }

  /* Refuse an upload over the server's limit before sending it (the server would answer 413). */
  document.addEventListener("submit", function (e) {
    var form = e.target, max = Number(form.dataset ? form.dataset.maxBytes : 0);
    if (!max) { return; }
    var total = 0;
    Array.prototype.forEach.call(form.querySelectorAll("input[type=file]"), function (input) {
      for (var i = 0; i < input.files.length; i += 1) { total += input.files[i].size; }
    });
    if (total > max) {
      e.preventDefault();
      e.stopImmediatePropagation();
      flash("These files total " + size(total) + ", over the " + size(max) +
            " upload limit. Choose fewer or smaller files, or split a bulk load into several jobs.");
    } else {
      flash("");
    }
  }, true);

  /* htmx does not swap error responses: show ours (HTML alerts), and turn anything else into words. */
  document.addEventListener("htmx:beforeSwap", function (e) {
    var xhr = e.detail.xhr;
    if (xhr.status < 400) { return; }
    var type = xhr.getResponseHeader("Content-Type") || "";
    if (type.indexOf("text/html") === 0) {
      e.detail.shouldSwap = true;
      e.detail.isError = false;
      return;
    }
    e.detail.shouldSwap = false;
    var message = "The server answered " + xhr.status + ".";
    try { message = JSON.parse(xhr.responseText).error || message; } catch (ignore) { /* not JSON */ }
    if (xhr.status === 413) { message = "The upload is too large: " + message; }
    flash(message);
  });

  document.addEventListener("htmx:sendError", function () {
    flash("The request did not reach the server, or the connection closed (an upload over the size limit " +
          "is refused this way). Check the files and try again.");
  });

  document.addEventListener("htmx:load", function (e) { setup(e.target); });
  if (document.readyState === "loading") {
    document.addEventListener("DOMContentLoaded", function () { setup(document); });
  } else {
    setup(document);
  }
}());
