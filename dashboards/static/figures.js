// Every page with plotly figures: PNG / SVG export buttons under each figure, and marks that open
// their runs — a point whose customdata is a URL on this site (a contour grid point, an optimum
// star, a curve at the optimum, a shift-table bar) navigates there on click.
'use strict';
document.addEventListener('click', function (ev) {
  const b = ev.target.closest('[data-export]');
  if (!b) return;
  const box = b.closest('.fig'), gd = box && box.querySelector('.plotly-graph-div');
  if (!gd || !window.Plotly) return;
  const fmt = b.dataset.export, L = gd._fullLayout || {};
  Plotly.downloadImage(gd, {format: fmt, filename: box.dataset.name || 'figure',
                            width: L.width || 1200, height: L.height || 600, scale: fmt === 'png' ? 2 : 1});
});

function linkOf(point) {
  let cd = point && point.customdata;
  if (Array.isArray(cd)) cd = cd[0];
  return typeof cd === 'string' && cd.startsWith('/') ? cd : null;
}

function wireClicks(gd) {
  if (gd.dataset.clicks || typeof gd.on !== 'function') return false;
  gd.dataset.clicks = '1';
  gd.on('plotly_click', function (ev) {
    const url = (ev.points || []).map(linkOf).find(Boolean);
    if (url) window.location.assign(url);
  });
  // A pointer cursor over marks that open runs.
  gd.on('plotly_hover', function (ev) {
    const drag = gd.querySelector('.nsewdrag');
    if (drag) drag.style.cursor = (ev.points || []).some(linkOf) ? 'pointer' : '';
  });
  gd.on('plotly_unhover', function () {
    const drag = gd.querySelector('.nsewdrag');
    if (drag) drag.style.cursor = '';
  });
  return true;
}

function wireAll() {
  const divs = Array.from(document.querySelectorAll('.plotly-graph-div'));
  const done = divs.filter(wireClicks).length;
  document.body.dataset.figuresWired = String(document.querySelectorAll('.plotly-graph-div[data-clicks]').length);
  return done;
}
wireAll();
window.addEventListener('load', wireAll);
