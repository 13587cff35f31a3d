// The page's own code talking to the widget through window.natter (set by natter.js).
// Kept in a file, not inline, so the page works under a CSP without 'unsafe-inline'.
document.getElementById('help').addEventListener('click', () => window.natter?.open());
window.addEventListener('natter:load', (e) => {
  e.detail.on('message', (m) => console.log(`[natter] ${m.role}: ${m.text}`));
});
