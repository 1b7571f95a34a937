// KafkaClicks dashboard: plain script over the query API. The API key is typed by the user, kept in localStorage
// and sent as a Bearer token. Every 10 s the two series charts, the top ads (a bar chart and a table) and, for admin
// keys, the reconciliation runs (a chart and a table) are fetched again.
(() => {
  'use strict';
  const KEY_STORAGE = 'kafkaclicks.apiKey';
  const REFRESH_MS = 10000;
  const ALL_ADS = 'all';
  const ADS_LISTED = 1000;
  const ADVERTISERS_LISTED = 1000;
  const $ = (id) => document.getElementById(id);
  const state = { key: localStorage.getItem(KEY_STORAGE) || '', advertiser: null, ad: ALL_ADS, timer: null, runsRefused: false };
  const charts = {};

  function status(text, error) {
    $('status').textContent = text;
    $('status').className = error ? 'error' : '';
  }

  async function api(path) {
    const response = await fetch(path, { headers: { Authorization: 'Bearer ' + state.key } });
    if (!response.ok) {
      let reason = response.statusText;
      try { reason = (await response.json()).title || reason; } catch { /* not JSON */ }
      throw new Error(response.status + ' ' + reason);
    }
    return response.json();
  }

  function makeChart(canvasId, color) {
    return new Chart($(canvasId), {
      type: 'line',
      data: {
        labels: [],
        datasets: [{
          label: 'clicks',
          data: [],
          partial: [],
          borderColor: color,
          backgroundColor: color,
          tension: 0.2,
          pointRadius: 2.5,
          // A segment leading to a partial point is dotted; partial points are hollow.
          segment: { borderDash: (ctx) => (ctx.chart.data.datasets[0].partial[ctx.p1DataIndex] ? [2, 3] : undefined) },
          pointBackgroundColor: (ctx) => (ctx.chart.data.datasets[0].partial[ctx.dataIndex] ? '#fff' : color),
        }],
      },
      options: {
        animation: false,
        maintainAspectRatio: false,
        scales: { y: { beginAtZero: true, ticks: { precision: 0 } }, x: { ticks: { maxTicksLimit: 12, autoSkip: true } } },
        plugins: { legend: { display: false } },
      },
    });
  }

  function draw(chart, canvasId, answer, label) {
    const dataset = chart.data.datasets[0];
    chart.data.labels = answer.points.map((p) => label(new Date(p.t)));
    dataset.data = answer.points.map((p) => p.clicks);
    dataset.partial = answer.points.map((p) => !p.final);
    chart.update();
    const canvas = $(canvasId);
    canvas.dataset.points = String(answer.points.length);
    canvas.dataset.partial = String(answer.points.filter((p) => !p.final).length);
    canvas.dataset.total = String(answer.total);
  }

  const minuteLabel = (d) => d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const hourLabel = (d) => d.toLocaleDateString([], { weekday: 'short' }) + ' ' + d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });

  function seriesPath(from, granularity) {
    const range = '?granularity=' + granularity + '&from=' + encodeURIComponent(from.toISOString());
    return state.ad === ALL_ADS
      ? '/v1/advertisers/' + state.advertiser + '/clicks' + range
      : '/v1/ads/' + state.ad + '/clicks' + range;
  }

  async function loadAdvertisers() {
    const answer = await api('/v1/advertisers?limit=' + ADVERTISERS_LISTED);
    const select = $('advertiser');
    const options = answer.advertisers.map((a) => new Option(a.name + ' (' + a.advertiserId + ')', String(a.advertiserId)));
    if (answer.next !== null) {
      const more = new Option('(the first ' + ADVERTISERS_LISTED + ' advertisers)', '');
      more.disabled = true;
      options.push(more);
    }
    select.replaceChildren(...options);
    if (answer.advertisers.length === 0) {
      throw new Error('this key sees no advertiser');
    }
    state.advertiser = select.value;
    state.ad = ALL_ADS;
    $('ad-id').value = '';
    await loadAds();
  }

  // The first page of the advertiser's ads fills the list; any other ad id can be typed in the box beside it.
  async function loadAds() {
    const answer = await api('/v1/advertisers/' + state.advertiser + '/ads?limit=' + ADS_LISTED);
    const select = $('ad');
    const previous = state.ad;
    const options = answer.ads.map((a) => new Option('Ad ' + a.adId + (a.deleted ? ' (removed)' : ''), String(a.adId)));
    if (answer.next !== null) {
      const more = new Option('(first ' + ADS_LISTED + ' ads: type any id beside)', '');
      more.disabled = true;
      options.push(more);
    }
    select.replaceChildren(new Option('All ads', ALL_ADS), ...options);
    select.value = answer.ads.some((a) => String(a.adId) === previous) ? previous : ALL_ADS;
    state.ad = select.value;
  }

  function drawTop(top) {
    const chart = charts.top;
    chart.data.labels = top.ads.map((a) => 'Ad ' + a.adId);
    chart.data.datasets[0].data = top.ads.map((a) => a.clicks);
    chart.update();
    $('top-chart').dataset.bars = String(top.ads.length);
    $('top').tBodies[0].replaceChildren(...top.ads.map((a, i) => {
      const row = document.createElement('tr');
      for (const value of [i + 1, a.adId, a.advertiserId, a.clicks.toLocaleString()]) {
        const cell = document.createElement('td');
        cell.textContent = String(value);
        row.appendChild(cell);
      }
      return row;
    }));
  }

  const RUNS_SHOWN = 48;

  // Admin keys only: the route answers 403 to an advertiser's key once, the section stays hidden, and it is not asked
  // again until another key is used.
  async function refreshRuns() {
    if (state.runsRefused) {
      return;
    }
    const response = await fetch('/v1/reconciliation/runs?last=' + RUNS_SHOWN, { headers: { Authorization: 'Bearer ' + state.key } });
    $('reconciliation').hidden = !response.ok;
    if (!response.ok) {
      state.runsRefused = response.status === 403;
      return;
    }
    const runs = (await response.json()).runs.slice().reverse();
    const chart = charts.runs;
    chart.data.labels = runs.map((r) => hourLabel(new Date(r.from)) + (r.adId === null ? '' : ' (ad ' + r.adId + ')'));
    chart.data.datasets[0].data = runs.map((r) => r.rawClicks - r.dbClicks);
    chart.data.datasets[1].data = runs.map((r) => r.windowsCorrected);
    chart.update();
    $('runs-chart').dataset.runs = String(runs.length);
    $('runs').tBodies[0].replaceChildren(...runs.slice(-10).reverse().map((r) => {
      const row = document.createElement('tr');
      const range = new Date(r.from).toLocaleString() + ' - ' + new Date(r.to).toLocaleTimeString();
      for (const value of [r.runId, range, r.status, r.rawClicks.toLocaleString(), r.dbClicks.toLocaleString(), r.windowsCorrected.toLocaleString()]) {
        const cell = document.createElement('td');
        cell.textContent = String(value);
        row.appendChild(cell);
      }
      return row;
    }));
  }

  async function refresh() {
    if (!state.key || !state.advertiser) {
      return;
    }
    try {
      const now = Date.now();
      const [minutes, hours, top] = await Promise.all([
        api(seriesPath(new Date(now - 3600 * 1000), '1m')),
        api(seriesPath(new Date(now - 7 * 24 * 3600 * 1000), '1h')),
        api('/v1/top?window=5m&limit=10&advertiserId=' + state.advertiser),
      ]);
      draw(charts.minute, 'minute-chart', minutes, minuteLabel);
      draw(charts.hour, 'hour-chart', hours, hourLabel);
      drawTop(top);
      await refreshRuns();
      const complete = minutes.completeThrough ? new Date(minutes.completeThrough).toLocaleTimeString() : 'unknown';
      status('Updated ' + new Date().toLocaleTimeString() + ' - final through ' + complete, false);
    } catch (e) {
      status('Could not load: ' + e.message, true);
    }
  }

  async function start() {
    clearInterval(state.timer);
    state.runsRefused = false;
    if (!state.key) {
      status('Type an API key to start.', false);
      return;
    }
    try {
      await loadAdvertisers();
    } catch (e) {
      status('Could not load: ' + e.message, true);
      if (!state.advertiser) {
        return;
      }
      // The advertiser is known, only its ad list failed: its totals are still drawn.
    }
    await refresh();
    state.timer = setInterval(refresh, REFRESH_MS);
  }

  $('key-form').addEventListener('submit', (event) => {
    event.preventDefault();
    state.key = $('api-key').value.trim();
    localStorage.setItem(KEY_STORAGE, state.key);
    start();
  });
  $('advertiser').addEventListener('change', async () => {
    state.advertiser = $('advertiser').value;
    state.ad = ALL_ADS;
    $('ad-id').value = '';
    try { await loadAds(); } catch (e) { status('Could not load: ' + e.message, true); }
    refresh();
  });
  $('ad').addEventListener('change', () => {
    state.ad = $('ad').value;
    $('ad-id').value = '';
    refresh();
  });
  $('ad-id').addEventListener('change', () => {
    const typed = $('ad-id').value.trim();
    state.ad = /^[0-9]+$/.test(typed) ? typed : ALL_ADS;
    $('ad').value = [...$('ad').options].some((o) => o.value === state.ad) ? state.ad : '';
    refresh();
  });

  charts.minute = makeChart('minute-chart', '#2f6fdf');
  charts.hour = makeChart('hour-chart', '#1f9d6b');
  charts.runs = new Chart($('runs-chart'), {
    type: 'bar',
    data: {
      labels: [],
      datasets: [
        { type: 'bar', label: 'clicks off by', data: [], backgroundColor: '#b04a9a', yAxisID: 'y' },
        { type: 'line', label: 'windows corrected', data: [], borderColor: '#5b6775', backgroundColor: '#5b6775', yAxisID: 'windows', pointRadius: 2 },
      ],
    },
    options: {
      animation: false,
      maintainAspectRatio: false,
      scales: {
        y: { ticks: { precision: 0 }, title: { display: true, text: 'clicks' } },
        windows: { position: 'right', beginAtZero: true, ticks: { precision: 0 }, grid: { drawOnChartArea: false }, title: { display: true, text: 'windows' } },
        x: { ticks: { maxTicksLimit: 12, autoSkip: true } },
      },
    },
  });
  charts.top = new Chart($('top-chart'), {
    type: 'bar',
    data: { labels: [], datasets: [{ label: 'clicks', data: [], backgroundColor: '#d9822b' }] },
    options: {
      indexAxis: 'y',
      animation: false,
      maintainAspectRatio: false,
      scales: { x: { beginAtZero: true, ticks: { precision: 0 } } },
      plugins: { legend: { display: false } },
    },
  });
  $('api-key').value = state.key;
  start();
})();
