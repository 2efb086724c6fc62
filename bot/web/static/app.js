// corecircle pages: live countdowns, the event stream that refreshes lists, inserting scripts.
(function () {
  "use strict";

  function span(ms) {
    var m = Math.floor(Math.abs(ms) / 60000);
    if (m < 60) return m + "分钟";
    var h = Math.floor(m / 60); m = m % 60;
    if (h < 24) return h + "小时" + (m ? m + "分" : "");
    var d = Math.floor(h / 24); h = h % 24;
    return d + "天" + (h ? h + "小时" : "");
  }

  function tick() {
    var now = Date.now();
    document.querySelectorAll("[data-deadline]").forEach(function (el) {
      var left = Date.parse(el.getAttribute("data-deadline")) - now;
      el.textContent = left >= 0 ? "剩 " + span(left) : "超时 " + span(left);
      if (left < 0) el.classList.add("late");
    });
  }

  function listen() {
    var url = document.body.getAttribute("data-events");
    if (!url || !window.EventSource) return;
    var source = new EventSource(url);
    source.addEventListener("changed", function () {
      document.querySelectorAll("[data-refresh]").forEach(function (el) {
        if (window.htmx) window.htmx.trigger(el, "refresh");
      });
    });
    source.addEventListener("ready", function () {
      document.body.classList.add("connected");
    });
    source.onerror = function () { document.body.classList.remove("connected"); };
    window.addEventListener("pagehide", function () { source.close(); });
  }

  function inserts() {
    document.addEventListener("click", function (ev) {
      var btn = ev.target.closest ? ev.target.closest("button.insert") : null;
      if (!btn) return;
      var box = document.getElementById("reply-text");
      if (!box) return;
      box.value = box.value ? box.value + "\n" + btn.getAttribute("data-text") : btn.getAttribute("data-text");
      box.focus();
    });
  }

  function chat() {
    function bottom() {
      document.querySelectorAll(".group-feed, .private-feed, .transcript").forEach(function (el) {
        el.scrollTop = el.scrollHeight;
      });
      // at phone width the feeds are not scroll boxes: the page scrolls instead
      if (document.querySelector(".group-feed") && window.innerWidth <= 820) {
        window.scrollTo(0, document.body.scrollHeight);
      }
    }
    document.addEventListener("click", function (ev) {
      var btn = ev.target.closest ? ev.target.closest("button[data-insert]") : null;
      var box = document.getElementById("chat-text");
      if (!btn || !box) return;
      box.value = btn.getAttribute("data-insert") + box.value;
      box.focus();
    });
    document.body.addEventListener("htmx:afterSwap", function (ev) {
      if (ev.target && ev.target.id === "chat-live") bottom();
    });
    document.body.addEventListener("htmx:afterRequest", function (ev) {
      var form = ev.target;
      if (form && form.classList && form.classList.contains("chat-input") && ev.detail.successful) {
        form.querySelector("input[name=text]").value = "";
      }
    });
    bottom();
  }

  document.addEventListener("DOMContentLoaded", function () {
    chat();
    tick();
    setInterval(tick, 1000);
    listen();
    inserts();
    document.body.addEventListener("htmx:afterSwap", tick);
  });
})();
