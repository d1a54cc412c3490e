// The forum: boards, paginated thread lists, threads with posts, search and replies.
// Server state: replies = [{thread, body}].
"use strict";

(() => {
  const { data, initialState, api, h, mount, refresh, searchForm, field } = Site;
  const PAGE_SIZE = 10;
  const boards = data.boards || [];
  const threads = data.threads || [];
  // The server inlines the state into the page; every write answers with the new state.
  let state = initialState;

  const repliesTo = (id) => (state.replies || []).filter((r) => r.thread === id);

  function header(query) {
    return h("header", {}, h("a", { href: "#/" }, data.forum || "Forum"), searchForm("Search the forum", query));
  }

  function threadLine(t) {
    const replies = t.posts.length - 1 + repliesTo(t.id).length;
    return h("li", {}, h("a", { href: "#/thread/" + t.id }, t.title),
      h("span", { class: "meta" }, "by " + t.author + " · " + replies + " replies"));
  }

  function home() {
    return [h("h1", {}, data.forum || "Forum"), h("ul", { class: "items" }, boards.map((b) => {
      const count = threads.filter((t) => t.board === b.id).length;
      return h("li", {}, h("a", { href: "#/board/" + b.id }, b.name),
        h("span", { class: "meta" }, b.description + " · " + count + " threads"));
    }))];
  }

  function board(id, params) {
    const b = boards.find((x) => String(x.id) === id);
    if (!b) return [h("h1", {}, "Board not found")];
    const list = threads.filter((t) => t.board === b.id);
    const pages = Math.max(1, Math.ceil(list.length / PAGE_SIZE));
    const page = Math.min(pages, Math.max(1, Number(params.get("page")) || 1));
    const shown = list.slice((page - 1) * PAGE_SIZE, page * PAGE_SIZE);
    const link = (n, label) => h("a", { href: "#/board/" + b.id + "?page=" + n }, label);
    return [h("h1", {}, b.name), h("ul", { class: "items" }, shown.map(threadLine)),
      h("nav", { class: "tabs", "aria-label": "Pages" }, page > 1 ? link(page - 1, "Previous page") : null,
        h("span", {}, "Page " + page + " of " + pages), page < pages ? link(page + 1, "Next page") : null)];
  }

  function post(author, body) {
    return h("article", { class: "post" }, h("h2", {}, author), h("p", {}, body));
  }

  function thread(id) {
    const t = threads.find((x) => String(x.id) === id);
    if (!t) return [h("h1", {}, "Thread not found")];
    const b = boards.find((x) => x.id === t.board);
    const text = h("textarea", { rows: 3 });
    const submit = (e) => {
      e.preventDefault();
      if (!text.value.trim()) return;
      state = api.append("replies", { thread: t.id, body: text.value.trim() });
      refresh();
    };
    return [h("p", {}, h("a", { href: "#/board/" + b.id }, "Back to " + b.name)), h("h1", {}, t.title),
      t.posts.map((p) => post(p.author, p.body)), repliesTo(t.id).map((r) => post("You", r.body)),
      h("form", { onsubmit: submit }, field("Your reply", text), h("button", { type: "submit" }, "Post reply"))];
  }

  function search(params) {
    const q = (params.get("q") || "").toLowerCase();
    const words = q.split(/\s+/).filter(Boolean);
    const found = words.length ? threads.filter((t) => {
      const text = (t.title + " " + t.posts.map((p) => p.body).join(" ")).toLowerCase();
      return words.every((w) => text.includes(w));
    }) : [];
    return [h("h1", {}, 'Search results for "' + (params.get("q") || "") + '"'),
      h("p", {}, found.length + " threads"), h("ul", { class: "items" }, found.map(threadLine))];
  }

  mount(({ parts, params }) => {
    const [page, arg] = parts;
    const body = page === "board" ? board(arg, params) : page === "thread" ? thread(arg)
      : page === "search" ? search(params) : home();
    return h("div", {}, header(page === "search" ? params.get("q") : ""), h("main", {}, body));
  });
})();
