/* Live refresh of the admin's cache alias page: every few seconds, fetch the page's JSON
   endpoint and replace its figures and its server-rendered SVG charts. No inline script,
   so a Content-Security-Policy of script-src 'self' holds. */
"use strict";
(function () {
    const root = document.querySelector("[data-refresh-url]");
    if (!root) {
        return;
    }
    const url = root.dataset.refreshUrl;
    const seconds = Number(root.dataset.refreshSeconds) || 5;
    const stamp = document.getElementById("lexigram-refreshed");

    function apply(data) {
        for (const [name, text] of Object.entries(data.figures || {})) {
            for (const el of root.querySelectorAll('[data-figure="' + name + '"]')) {
                el.textContent = text;
            }
        }
        if (data.status) {
            for (const el of root.querySelectorAll('[data-figure="status"]')) {
                el.className = "value lexigram-status lexigram-status-" + data.status;
            }
        }
        for (const [name, svg] of Object.entries(data.charts || {})) {
            const box = root.querySelector('[data-chart="' + name + '"]');
            if (box) {
                // Markup built server-side from numbers, every text escaped (admin/charts.py).
                const doc = new DOMParser().parseFromString(svg, "image/svg+xml");
                box.replaceChildren(document.importNode(doc.documentElement, true));
            }
        }
        if (stamp) {
            stamp.textContent = stamp.textContent.replace(/ \(.*\)$/, "") +
                " (" + new Date().toLocaleTimeString() + ")";
        }
        root.dataset.refreshed = String(Number(root.dataset.refreshed || 0) + 1);
    }

    let ticks = 0;

    async function refresh() {
        ticks += 1;
        // The last day's charts change every 15 minutes: ask for them about once a minute.
        const wanted = url + (ticks % Math.max(1, Math.round(60 / seconds)) === 0 ? "?day=1" : "");
        try {
            const response = await fetch(wanted, {credentials: "same-origin", headers: {Accept: "application/json"}});
            if (response.ok) {
                apply(await response.json());
            }
        } catch (error) {
            // The next tick tries again; a refresh must never break the page.
        }
        window.setTimeout(refresh, seconds * 1000);
    }
    window.setTimeout(refresh, seconds * 1000);
})();
