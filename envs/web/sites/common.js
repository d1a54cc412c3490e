// Shared by the bundled sites: state API, a tiny DOM builder and a hash router.
"use strict";

const Site = (() => {
  const data = window.SITE_DATA || {};
  const initialState = window.SITE_STATE || {};

  // Synchronous on purpose: the app state is saved on the server before the event handler that
  // changed it returns, so a check that runs right after an action sees it.
  function request(method, url, body) {
    const xhr = new XMLHttpRequest();
    xhr.open(method, url, false);
    xhr.setRequestHeader("Content-Type", "application/json");
    xhr.send(body === undefined ? null : JSON.stringify(body));
    if (xhr.status !== 200) {
      throw new Error(method + " " + url + " failed: " + xhr.status + " " + xhr.responseText);
    }
    return JSON.parse(xhr.responseText);
  }

  const api = {
    state: () => request("GET", "/api/state"),
    put: (key, value) => request("PUT", "/api/state/" + key, value),
    append: (key, value) => request("POST", "/api/state/" + key, value),
  };

  // h("button", {onclick: f, class: "x"}, "text", child, [more children])
  function h(tag, attrs, ...children) {
    const el = document.createElement(tag);
    for (const [key, value] of Object.entries(attrs || {})) {
      if (value === undefined || value === null || value === false) continue;
      if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
      else if (key === "value" || key === "checked" || key === "selected") el[key] = value;
      else el.setAttribute(key, value === true ? "" : value);
    }
    for (const child of children.flat(Infinity)) {
      if (child === undefined || child === null || child === false) continue;
      el.append(child instanceof Node ? child : String(child));
    }
    return el;
  }

  function route() {
    const hash = location.hash.replace(/^#/, "") || "/";
    const [path, query] = hash.split("?");
    return { parts: path.split("/").filter(Boolean), params: new URLSearchParams(query || "") };
  }

  let draw = () => {};
  let drawn = null;

  // Navigate inside the app and render at once (no waiting for the asynchronous hashchange).
  function go(hash) {
    if (location.hash !== hash) history.pushState(null, "", hash);
    drawn = null;
    draw();
  }

  function mount(render) {
    const root = document.getElementById("app");
    draw = () => {
      if (drawn === location.hash) return;
      drawn = location.hash;
      root.replaceChildren(render(route()));
      window.scrollTo(0, 0);
    };
    window.addEventListener("hashchange", draw);
    window.addEventListener("popstate", draw);
    document.addEventListener("click", (event) => {
      const link = event.target.closest && event.target.closest("a[href^='#']");
      if (link && !event.defaultPrevented) {
        event.preventDefault();
        go(link.getAttribute("href"));
      }
    });
    draw();
  }

  // Re-render the current page (after a change of state that the page shows).
  function refresh() {
    drawn = null;
    draw();
  }

  // The header's search box: submitting opens #/search?q=...
  function searchForm(label, query) {
    const box = h("input", { type: "search", "aria-label": label, value: query || "" });
    return h("form", {
      role: "search",
      onsubmit: (e) => { e.preventDefault(); go("#/search?q=" + encodeURIComponent(box.value.trim())); },
    }, box, h("button", { type: "submit" }, "Search"));
  }

  function money(value) {
    return "$" + Number(value).toFixed(2);
  }

  function field(label, control) {
    const id = "f-" + label.toLowerCase().replace(/[^a-z0-9]+/g, "-");
    control.id = id;
    return h("div", { class: "field" }, h("label", { for: id }, label), control);
  }

  function select(options, selected, attrs) {
    return h("select", attrs || {},
      options.map((o) => h("option", { value: o, selected: o === selected }, o)));
  }

  return { data, initialState, api, h, route, go, mount, refresh, searchForm, money, field, select };
})();
