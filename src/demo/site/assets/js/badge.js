// Shows a small "Served by the standby Raspberry Pi" badge when this page is being served
// by the pi-failover standby, which marks every response with `X-Powered-By: raspberry-pi`.
// A page script cannot read the headers of its own page, so it asks again with a HEAD
// request: headers only, no body, and `no-store` so the answer comes from the server that
// answers now, not from the browser's cache. Any error leaves the page as it is.
(function () {
  'use strict';

  const EXPECTED = 'raspberry-pi';

  function showBadge() {
    if (document.getElementById('pi-badge')) return;
    const badge = document.createElement('div');
    badge.id = 'pi-badge';
    badge.className = 'pi-badge';
    badge.textContent = 'Served by the standby Raspberry Pi';
    document.body.appendChild(badge);
  }

  async function check() {
    try {
      const response = await fetch(location.pathname, { method: 'HEAD', cache: 'no-store' });
      const value = response.headers.get('x-powered-by');
      if (value && value.trim().toLowerCase() === EXPECTED) showBadge();
    } catch (e) {
      // Offline, blocked by a policy, or no fetch: no badge.
    }
  }

  // With `defer` the document is already parsed when this runs; without it, wait.
  if (document.readyState === 'loading') {
    document.addEventListener('DOMContentLoaded', check);
  } else {
    check();
  }
})();
