// The shop: search, filter and sort the catalog, add to cart, check out.
// Server state: cart = [{id, qty}], orders = [{id, items, name, address, city, shipping, total}].
"use strict";

(() => {
  const { data, initialState, api, h, mount, go, refresh, searchForm, money, field, select } = Site;
  const products = data.products || [];
  const byId = new Map(products.map((p) => [p.id, p]));
  const SORTS = ["Relevance", "Price: low to high", "Price: high to low", "Customer rating"];
  // The server inlines the state into the page; every write answers with the new state.
  let state = initialState;
  let notice = null;

  const cart = () => state.cart || [];
  const cartCount = () => cart().reduce((n, item) => n + item.qty, 0);
  const cartTotal = () => cart().reduce((t, item) => t + item.qty * byId.get(item.id).price, 0);

  function header(query) {
    return h("header", {}, h("a", { href: "#/" }, data.store || "Shop"), searchForm("Search products", query),
      h("a", { href: "#/cart" }, "Cart (" + cartCount() + ")"));
  }

  function productLine(p) {
    return h("li", {}, h("a", { href: "#/product/" + p.id }, p.name),
      h("span", { class: "meta" }, money(p.price) + " · " + p.rating.toFixed(1) + " stars · " + p.color));
  }

  function home() {
    const top = [...products].sort((a, b) => b.rating - a.rating || a.id - b.id).slice(0, 4);
    return [h("h1", {}, "Welcome to " + (data.store || "the shop")),
      h("h2", {}, "Shop by category"),
      h("ul", { class: "items" }, (data.categories || []).map((c) =>
        h("li", {}, h("a", { href: "#/search?category=" + encodeURIComponent(c) }, c)))),
      h("h2", {}, "Top rated"), h("ul", { class: "items" }, top.map(productLine))];
  }

  function search(params) {
    const q = (params.get("q") || "").toLowerCase();
    const category = params.get("category") || "All categories";
    const sort = params.get("sort") || SORTS[0];
    const words = q.split(/\s+/).filter(Boolean);
    let found = products.filter((p) => {
      const text = (p.name + " " + p.category + " " + p.color).toLowerCase();
      return words.every((w) => text.includes(w)) && (category === "All categories" || p.category === category);
    });
    if (sort === SORTS[1]) found.sort((a, b) => a.price - b.price);
    if (sort === SORTS[2]) found.sort((a, b) => b.price - a.price);
    if (sort === SORTS[3]) found.sort((a, b) => b.rating - a.rating);
    const update = (key, value) => {
      const next = new URLSearchParams(params);
      next.set(key, value);
      go("#/search?" + next.toString());
    };
    const filters = h("div", { class: "filters" },
      field("Category", select(["All categories", ...(data.categories || [])], category,
        { onchange: (e) => update("category", e.target.value) })),
      field("Sort by", select(SORTS, sort, { onchange: (e) => update("sort", e.target.value) })));
    const title = q ? 'Results for "' + params.get("q") + '"' : category;
    return [h("h1", {}, title), filters, h("p", {}, found.length + " products"),
      h("ul", { class: "items" }, found.map(productLine))];
  }

  function product(id) {
    const p = byId.get(Number(id));
    if (!p) return [h("h1", {}, "Product not found")];
    const qty = select(["1", "2", "3", "4", "5"], "1");
    const add = () => {
      const n = Number(qty.value);
      const items = cart().map((item) => ({ ...item }));
      const line = items.find((item) => item.id === p.id);
      if (line) line.qty += n; else items.push({ id: p.id, qty: n });
      state = api.put("cart", items);
      notice = "Added " + n + " × " + p.name + " to your cart.";
      refresh();
    };
    return [h("h1", {}, p.name),
      h("p", {}, "Price: " + money(p.price)), h("p", {}, "Rating: " + p.rating.toFixed(1) + " out of 5"),
      h("p", {}, "Color: " + p.color), h("p", {}, "Category: " + p.category), h("p", {}, p.description),
      field("Quantity", qty), h("button", { onclick: add }, "Add to cart")];
  }

  function cartPage() {
    if (!cart().length) return [h("h1", {}, "Your cart"), h("p", {}, "Your cart is empty.")];
    const remove = (id) => () => {
      state = api.put("cart", cart().filter((item) => item.id !== id));
      refresh();
    };
    const rows = cart().map((item) => {
      const p = byId.get(item.id);
      return h("tr", {}, h("td", {}, h("a", { href: "#/product/" + p.id }, p.name)),
        h("td", {}, "Qty " + item.qty), h("td", {}, money(item.qty * p.price)),
        h("td", {}, h("button", { "aria-label": "Remove " + p.name, onclick: remove(p.id) }, "Remove")));
    });
    return [h("h1", {}, "Your cart"), h("table", {}, h("tbody", {}, rows)),
      h("p", {}, "Total: " + money(cartTotal())), h("a", { href: "#/checkout" }, "Proceed to checkout")];
  }

  function checkout() {
    if (!cart().length) return [h("h1", {}, "Checkout"), h("p", {}, "Your cart is empty.")];
    const name = h("input", { type: "text" });
    const address = h("input", { type: "text" });
    const city = h("input", { type: "text" });
    const shipping = select(["Standard", "Express"], "Standard");
    const error = h("p", { role: "alert", class: "alert", hidden: true });
    const submit = (e) => {
      e.preventDefault();
      const missing = [["Full name", name], ["Street address", address], ["City", city]]
        .filter(([, input]) => !input.value.trim()).map(([label]) => label);
      if (missing.length) {
        error.textContent = "Please fill in: " + missing.join(", ") + ".";
        error.hidden = false;
        return;
      }
      const order = { id: 1001 + (state.orders || []).length, items: cart(), name: name.value.trim(),
        address: address.value.trim(), city: city.value.trim(), shipping: shipping.value, total: cartTotal() };
      api.append("orders", order);
      state = api.put("cart", []);
      go("#/order/" + order.id);
    };
    const summary = cart().map((item) => h("li", {}, item.qty + " × " + byId.get(item.id).name));
    return [h("h1", {}, "Checkout"), h("ul", {}, summary), h("p", {}, "Total: " + money(cartTotal())),
      h("form", { onsubmit: submit }, field("Full name", name), field("Street address", address),
        field("City", city), field("Shipping method", shipping), error,
        h("button", { type: "submit" }, "Place order"))];
  }

  function confirmation(id) {
    const order = (state.orders || []).find((o) => String(o.id) === id);
    if (!order) return [h("h1", {}, "Order not found")];
    return [h("h1", {}, "Thank you!"), h("p", { role: "status", class: "status" },
      "Order #" + order.id + " is placed and will ship (" + order.shipping + ") to " + order.name + ", " +
      order.address + ", " + order.city + ".")];
  }

  mount(({ parts, params }) => {
    const [page, arg] = parts;
    const shown = notice;
    notice = null;
    const body = page === "search" ? search(params) : page === "product" ? product(arg)
      : page === "cart" ? cartPage() : page === "checkout" ? checkout()
      : page === "order" ? confirmation(arg) : home();
    return h("div", {}, header(page === "search" ? params.get("q") : ""),
      h("main", {}, shown ? h("p", { role: "status", class: "status" }, shown) : null, body));
  });
})();
