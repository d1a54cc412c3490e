// Live figures: a run page polls its store while the run is written and refreshes the numbers
// (and the plot when an iteration ends). Nothing else on the pages needs JavaScript.
(function () {
  const box = document.querySelector("[data-live-url]");
  if (!box) return;
  let last = null;
  async function poll() {
    try {
      const r = await fetch(box.dataset.liveUrl, {cache: "no-store"});
      if (!r.ok) return;
      const d = await r.json();
      for (const [k, v] of Object.entries(d)) {
        document.querySelectorAll(`[data-live="${k}"]`).forEach((e) => { e.textContent = v; });
      }
      const key = `${d.iterations_done}/${d.last_heldout}`;
      if (last !== null && key !== last) {
        const svg = await fetch(box.dataset.plotUrl, {cache: "no-store"});
        if (svg.ok) document.getElementById("timeline-plot").innerHTML = await svg.text();
      }
      last = key;
      if (d.status !== "running") return;  // a finished or stopped run changes no more
    } catch (e) { /* the server went away: keep the page as it is */ }
    setTimeout(poll, 2000);
  }
  poll();
})();
