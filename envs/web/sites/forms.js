// The hotel site: a booking form and an account-settings form.
// Server state: bookings = [{ref, guest, checkin, nights, room, guests, breakfast, pickup, requests}],
// settings_saves = [{display_name, email, language, timezone, newsletter, two_factor, theme}].
"use strict";

(() => {
  const { data, initialState, api, h, mount, go, field, select } = Site;
  // The server inlines the state into the page; every write answers with the new state.
  let state = initialState;
  let notice = null;

  function nav() {
    return h("header", {}, h("a", { href: "#/book" }, data.hotel || "Hotel"),
      h("nav", { class: "tabs", "aria-label": "Sections" },
        h("a", { href: "#/book" }, "Book a room"), h("a", { href: "#/settings" }, "Account settings")));
  }

  function checkbox(label, checked) {
    const box = h("input", { type: "checkbox", checked });
    return [h("label", {}, box, " " + label), box];
  }

  function radios(legend, name, options, chosen) {
    const inputs = options.map((o) => h("input", { type: "radio", name, value: o, checked: o === chosen }));
    const group = h("fieldset", {}, h("legend", {}, legend),
      options.map((o, i) => h("label", {}, inputs[i], " " + o + " ")));
    return [group, () => (inputs.find((i) => i.checked) || {}).value || ""];
  }

  function errorBox() {
    return h("p", { role: "alert", class: "alert", hidden: true });
  }

  function fail(box, message) {
    box.textContent = message;
    box.hidden = false;
  }

  function booking() {
    const guest = h("input", { type: "text" });
    const checkin = h("input", { type: "text", placeholder: "YYYY-MM-DD" });
    const nights = select(Array.from({ length: 14 }, (_, i) => String(i + 1)), "1");
    const [roomGroup, room] = radios("Room type", "room", data.rooms || ["Single"], (data.rooms || ["Single"])[0]);
    const guests = h("input", { type: "number", min: 1, max: 6, value: "1" });
    const [breakfastLabel, breakfast] = checkbox("Breakfast included", false);
    const [pickupLabel, pickup] = checkbox("Airport pickup", false);
    const requests = h("textarea", { rows: 3 });
    const error = errorBox();
    const submit = (e) => {
      e.preventDefault();
      const date = checkin.value.trim();
      const count = Number(guests.value);
      if (!guest.value.trim()) return fail(error, "Please enter the guest name.");
      if (!/^\d{4}-\d{2}-\d{2}$/.test(date) || isNaN(Date.parse(date))) {
        return fail(error, "The check-in date must be a date written as YYYY-MM-DD.");
      }
      if (!Number.isInteger(count) || count < 1 || count > 6) return fail(error, "Guests must be 1 to 6.");
      const record = { ref: "HV-" + (1001 + (state.bookings || []).length), guest: guest.value.trim(),
        checkin: date, nights: Number(nights.value), room: room(), guests: count,
        breakfast: breakfast.checked, pickup: pickup.checked, requests: requests.value.trim() };
      state = api.append("bookings", record);
      go("#/booking/" + record.ref);
    };
    return [h("h1", {}, "Book a room"),
      h("form", { onsubmit: submit }, field("Guest name", guest), field("Check-in date", checkin),
        field("Nights", nights), roomGroup, field("Guests", guests), breakfastLabel, h("br"), pickupLabel,
        field("Special requests", requests), error, h("button", { type: "submit" }, "Book now"))];
  }

  function confirmation(ref) {
    const b = (state.bookings || []).find((x) => x.ref === ref);
    if (!b) return [h("h1", {}, "Booking not found")];
    return [h("h1", {}, "Booking confirmed"), h("p", { role: "status", class: "status" },
      "Booking " + b.ref + ": " + b.room + " room for " + b.guest + ", " + b.nights + " night(s) from " +
      b.checkin + ".")];
  }

  function settings() {
    const saves = state.settings_saves || [];
    const now = saves.length ? saves[saves.length - 1] : data.settings || {};
    const name = h("input", { type: "text", value: now.display_name || "" });
    const email = h("input", { type: "email", value: now.email || "" });
    const language = select(data.languages || [], now.language);
    const timezone = select(data.timezones || [], now.timezone);
    const [newsLabel, newsletter] = checkbox("Email newsletter", !!now.newsletter);
    const [twoLabel, twoFactor] = checkbox("Two-factor authentication", !!now.two_factor);
    const [themeGroup, theme] = radios("Theme", "theme", ["Light", "Dark"], now.theme || "Light");
    const error = errorBox();
    const submit = (e) => {
      e.preventDefault();
      if (!email.value.includes("@")) return fail(error, "Please enter a valid email address.");
      const record = { display_name: name.value.trim(), email: email.value.trim(), language: language.value,
        timezone: timezone.value, newsletter: newsletter.checked, two_factor: twoFactor.checked, theme: theme() };
      state = api.append("settings_saves", record);
      notice = "Settings saved.";
      go("#/settings");
    };
    return [h("h1", {}, "Account settings"),
      h("form", { onsubmit: submit }, field("Display name", name), field("Email", email),
        field("Language", language), field("Time zone", timezone), newsLabel, h("br"), twoLabel,
        themeGroup, error, h("button", { type: "submit" }, "Save settings"))];
  }

  mount(({ parts }) => {
    const [page, arg] = parts;
    const shown = notice;
    notice = null;
    const body = page === "settings" ? settings() : page === "booking" ? confirmation(arg) : booking();
    return h("div", {}, nav(),
      h("main", {}, shown ? h("p", { role: "status", class: "status" }, shown) : null, body));
  });
})();
