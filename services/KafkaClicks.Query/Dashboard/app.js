// KafkaClicks dashboard: plain script over the query API. The API key is typed by the user, kept in localStorage
// and sent as a Bearer token. Every 10 s the two series charts (the last hour by minute, and the range, granularity
// and day zone the user picked), the top ads (a bar chart and a table) and, for admin keys, the reconciliation runs
// (a chart and a table) are fetched again. Each chart and table downloads what it shows as CSV, from the answer drawn.
(() => {
  'use strict';
  const KEY_STORAGE = 'kafkaclicks.apiKey';
  const REFRESH_MS = 10000;
  const ALL_ADS = 'all';
  const ADS_LISTED = 1000;
  const ADVERTISERS_LISTED = 1000;
  // A search follows the ads route's pages (each looks at a bounded number of ads) until it has this many matches,
  // or has made this many requests; "Search further" goes on from there.
  const SEARCH_SHOWN = 50;
  const SEARCH_REQUESTS = 20;
  const HOUR_MS = 3600 * 1000;
  const RANGES = { '1h': HOUR_MS, '24h': 24 * HOUR_MS, '7d': 7 * 24 * HOUR_MS, '30d': 30 * 24 * HOUR_MS, '90d': 90 * 24 * HOUR_MS, '365d': 365 * 24 * HOUR_MS };
  const RANGE_NAMES = { '1h': 'last hour', '24h': 'last 24 hours', '7d': 'last 7 days', '30d': 'last 30 days', '90d': 'last 90 days', '365d': 'last 365 days' };
  const GRANULARITY_NAMES = { '1m': 'minute', '5m': '5 minutes', '15m': '15 minutes', '1h': 'hour', '1d': 'day' };
  const $ = (id) => document.getElementById(id);
  const state = { key: localStorage.getItem(KEY_STORAGE) || '', advertiser: null, ad: ALL_ADS, timer: null, runsRefused: false, search: null };
  const charts = {};
  // The answers drawn last, for the CSV downloads; and a counter per chart so that a slower, older answer never
  // replaces a newer one.
  const shown = {};
  const requests = {};

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

  // The answer of path for chart name, or null when another request for that chart was made meanwhile.
  async function latest(name, path) {
    const ticket = (requests[name] || 0) + 1;
    requests[name] = ticket;
    const answer = await api(path);
    return requests[name] === ticket ? answer : null;
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

  function draw(name, answer, label) {
    const chart = charts[name];
    const dataset = chart.data.datasets[0];
    chart.data.labels = answer.points.map((p) => label(new Date(p.t), answer));
    dataset.data = answer.points.map((p) => p.clicks);
    dataset.partial = answer.points.map((p) => !p.final);
    chart.update();
    shown[name] = answer;
    const canvas = chart.canvas;
    canvas.dataset.points = String(answer.points.length);
    canvas.dataset.partial = String(answer.points.filter((p) => !p.final).length);
    canvas.dataset.total = String(answer.total);
    canvas.dataset.ad = answer.adId === undefined ? ALL_ADS : String(answer.adId);
    canvas.dataset.from = answer.from;
    canvas.dataset.to = answer.to;
    canvas.dataset.granularity = answer.granularity;
    canvas.dataset.tz = answer.tz;
  }

  const timeLabel = (d) => d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  const dayTimeLabel = (d) => d.toLocaleDateString([], { weekday: 'short', month: 'short', day: 'numeric' }) + ' ' + timeLabel(d);
  const hourLabel = (d) => d.toLocaleDateString([], { weekday: 'short' }) + ' ' + timeLabel(d);
  // Day buckets start at midnight in the answer's zone: named in that zone, not the browser's.
  const dayLabel = (d, answer) => d.toLocaleDateString([], { timeZone: answer.tz, weekday: 'short', year: 'numeric', month: 'short', day: 'numeric' });

  function rangeLabel(d, answer) {
    if (answer.granularity === '1d') {
      return dayLabel(d, answer);
    }
    return new Date(answer.to) - new Date(answer.from) <= 24 * HOUR_MS ? timeLabel(d) : dayTimeLabel(d);
  }

  function seriesPath(query) {
    return (state.ad === ALL_ADS
      ? '/v1/advertisers/' + state.advertiser + '/clicks?'
      : '/v1/ads/' + state.ad + '/clicks?') + query;
  }

  // The range chart's query from its controls: a preset ending now, or the two instants typed (browser local time).
  function rangeQuery() {
    const granularity = $('granularity').value;
    let range;
    if ($('range').value === 'custom') {
      const from = new Date($('from').value);
      const to = new Date($('to').value);
      if (Number.isNaN(from.getTime()) || Number.isNaN(to.getTime())) {
        throw new Error('type both ends of the range');
      }
      range = 'from=' + encodeURIComponent(from.toISOString()) + '&to=' + encodeURIComponent(to.toISOString());
    } else {
      range = 'from=' + encodeURIComponent(new Date(Date.now() - RANGES[$('range').value]).toISOString());
    }
    const tz = granularity === '1d' && $('tz').value !== 'UTC' ? '&tz=' + encodeURIComponent($('tz').value) : '';
    return range + '&granularity=' + granularity + tz;
  }

  function rangeCaption() {
    const range = $('range').value === 'custom' ? 'from ' + $('from').value.replace('T', ' ') + ' to ' + $('to').value.replace('T', ' ') : RANGE_NAMES[$('range').value];
    const zone = $('granularity').value === '1d' ? ' (days in ' + $('tz').value + ')' : '';
    return 'Clicks per ' + GRANULARITY_NAMES[$('granularity').value] + ', ' + range + zone;
  }

  async function refreshRange() {
    $('range-caption').textContent = rangeCaption();
    try {
      const answer = await latest('range', seriesPath(rangeQuery()));
      if (answer) {
        draw('range', answer, rangeLabel);
        $('range-error').hidden = true;
      }
    } catch (e) {
      $('range-error').textContent = 'Could not load this range: ' + e.message;
      $('range-error').hidden = false;
    }
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
    await loadAds();
  }

  const adOption = (a) => new Option('Ad ' + a.adId + ' \u00b7 ' + a.redirectUrl + (a.deleted ? ' (removed)' : ''), String(a.adId));

  // The ad list: "All ads", the ads given, a note after them, and the ad charted if it is not among them.
  function fillAds(ads, note) {
    const options = ads.map(adOption);
    if (note) {
      const more = new Option(note, '');
      more.disabled = true;
      options.push(more);
    }
    $('ad').replaceChildren(new Option('All ads', ALL_ADS), ...options);
    showAd();
  }

  function showAd() {
    const select = $('ad');
    if (![...select.options].some((o) => o.value === state.ad)) {
      select.add(new Option('Ad ' + state.ad, state.ad), 1);
    }
    select.value = state.ad;
  }

  // The first page of the advertiser's ads fills the list; any other ad is found with the search.
  async function loadAds() {
    state.search = null;
    $('ad-search').value = '';
    $('search-more').hidden = true;
    const answer = await api('/v1/advertisers/' + state.advertiser + '/ads?limit=' + ADS_LISTED);
    fillAds(answer.ads, answer.next !== null ? '(the first ' + ADS_LISTED + ' ads: find the others by id or URL)' : '');
  }

  // Follows the search's pages from where it stopped until SEARCH_SHOWN more matches or SEARCH_REQUESTS requests;
  // the first search of a query charts its first match.
  async function searchMore(chartFirst) {
    const search = state.search;
    const found = [];
    let after = search.next;
    let made = 0;
    do {
      const answer = await api('/v1/advertisers/' + search.advertiser + '/ads?q=' + encodeURIComponent(search.q)
        + '&limit=' + (SEARCH_SHOWN - found.length) + (after === null ? '' : '&after=' + after));
      found.push(...answer.ads);
      after = answer.next;
      made++;
    } while (after !== null && found.length < SEARCH_SHOWN && made < SEARCH_REQUESTS);
    if (state.search !== search) {
      return;
    }
    const charted = chartFirst && found.length > 0;
    if (charted) {
      state.ad = String(found[0].adId);
    }
    search.ads.push(...found);
    search.next = after;
    const more = after !== null;
    fillAds(search.ads, search.ads.length === 0 && !more ? '(no ad matches "' + search.q + '")' : '');
    $('search-more').hidden = !more;
    status(search.ads.length + (search.ads.length === 1 ? ' ad matches' : ' ads match') + ' "' + search.q + '"' + (more ? ' so far' : ''), false);
    if (charted) {
      markTop();
      refresh();
    }
  }

  async function search(q) {
    if (!q) {
      await loadAds();
      return;
    }
    state.search = { q, advertiser: state.advertiser, next: null, ads: [] };
    await searchMore(true);
  }

  function chartAd(adId) {
    state.ad = String(adId);
    showAd();
    markTop();
    refresh();
  }

  function markTop() {
    for (const row of $('top').tBodies[0].rows) {
      row.classList.toggle('selected', row.dataset.ad === state.ad);
    }
  }

  function drawTop(top) {
    const chart = charts.top;
    chart.data.labels = top.ads.map((a) => 'Ad ' + a.adId);
    chart.data.datasets[0].data = top.ads.map((a) => a.clicks);
    chart.update();
    shown.top = top;
    $('top-chart').dataset.bars = String(top.ads.length);
    $('top').tBodies[0].replaceChildren(...top.ads.map((a, i) => {
      const row = document.createElement('tr');
      row.dataset.ad = String(a.adId);
      row.tabIndex = 0;
      row.title = 'Chart ad ' + a.adId;
      row.addEventListener('click', () => chartAd(a.adId));
      row.addEventListener('keydown', (event) => { if (event.key === 'Enter') { chartAd(a.adId); } });
      for (const value of [i + 1, a.adId, a.advertiserId, a.clicks.toLocaleString()]) {
        const cell = document.createElement('td');
        cell.textContent = String(value);
        row.appendChild(cell);
      }
      return row;
    }));
    markTop();
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
    shown.runs = runs;
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
      const [minutes, top] = await Promise.all([
        latest('minute', seriesPath('granularity=1m&from=' + encodeURIComponent(new Date(Date.now() - HOUR_MS).toISOString()))),
        latest('top', '/v1/top?window=5m&limit=10&advertiserId=' + state.advertiser),
        refreshRange(),
      ]);
      if (minutes) {
        draw('minute', minutes, timeLabel);
      }
      if (top) {
        drawTop(top);
      }
      await refreshRuns();
      if (minutes && !state.search) {
        const complete = minutes.completeThrough ? new Date(minutes.completeThrough).toLocaleTimeString() : 'unknown';
        status('Updated ' + new Date().toLocaleTimeString() + ' - final through ' + complete, false);
      }
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

  // CSV (RFC 4180): a field with a comma, quote or line break is quoted, its quotes doubled.
  function csv(rows) {
    const field = (value) => {
      const text = value === null || value === undefined ? '' : String(value);
      return /[",\r\n]/.test(text) ? '"' + text.replace(/"/g, '""') + '"' : text;
    };
    return rows.map((row) => row.map(field).join(',')).join('\r\n') + '\r\n';
  }

  function download(name, rows) {
    const link = document.createElement('a');
    link.href = URL.createObjectURL(new Blob([csv(rows)], { type: 'text/csv;charset=utf-8' }));
    link.download = name;
    document.body.appendChild(link);
    link.click();
    link.remove();
    setTimeout(() => URL.revokeObjectURL(link.href), 10000);
  }

  // A series as drawn: each bucket's start (UTC), its label on the chart, clicks and whether it is final.
  function downloadSeries(name) {
    const answer = shown[name];
    if (!answer) {
      return;
    }
    const labels = charts[name].data.labels;
    const scope = answer.adId === undefined ? 'advertiser-' + answer.advertiserId : 'ad-' + answer.adId;
    const zone = answer.granularity === '1d' && answer.tz !== 'UTC' ? '-' + answer.tz.replace(/\//g, '_') : '';
    download('kafkaclicks-' + scope + '-' + answer.granularity + zone + '-' + answer.from.slice(0, 16).replace(':', '') + '.csv',
      [['t', 'label', 'clicks', 'final'], ...answer.points.map((p, i) => [p.t, labels[i], p.clicks, p.final])]);
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
    try { await loadAds(); } catch (e) { status('Could not load: ' + e.message, true); }
    refresh();
  });
  $('ad').addEventListener('change', () => {
    state.ad = $('ad').value;
    markTop();
    refresh();
  });
  $('search-form').addEventListener('submit', async (event) => {
    event.preventDefault();
    try { await search($('ad-search').value.trim()); } catch (e) { status('Could not search: ' + e.message, true); }
  });
  $('search-more').addEventListener('click', async () => {
    try { await searchMore(false); } catch (e) { status('Could not search: ' + e.message, true); }
  });
  $('range').addEventListener('change', () => {
    $('custom-range').hidden = $('range').value !== 'custom';
    if ($('range').value === 'custom' && !$('from').value) {
      // Start from the range shown: the last 7 days up to now, in the browser's time.
      const local = (d) => new Date(d.getTime() - d.getTimezoneOffset() * 60000).toISOString().slice(0, 16);
      $('from').value = local(new Date(Date.now() - RANGES['7d']));
      $('to').value = local(new Date());
    }
    refreshRange();
  });
  for (const id of ['from', 'to', 'tz']) {
    $(id).addEventListener('change', refreshRange);
  }
  $('granularity').addEventListener('change', () => {
    // The API takes a zone for day buckets only.
    $('tz').disabled = $('granularity').value !== '1d';
    refreshRange();
  });
  $('minute-csv').addEventListener('click', () => downloadSeries('minute'));
  $('range-csv').addEventListener('click', () => downloadSeries('range'));
  $('top-csv').addEventListener('click', () => {
    if (shown.top) {
      download('kafkaclicks-top-' + shown.top.window + '-advertiser-' + shown.top.advertiserId + '.csv',
        [['rank', 'ad_id', 'advertiser_id', 'clicks'], ...shown.top.ads.map((a, i) => [i + 1, a.adId, a.advertiserId, a.clicks])]);
    }
  });
  $('runs-csv').addEventListener('click', () => {
    if (shown.runs) {
      download('kafkaclicks-reconciliation-runs.csv',
        [['run_id', 'from', 'to', 'ad_id', 'status', 'raw_clicks', 'db_clicks', 'windows_checked', 'windows_corrected'],
          ...shown.runs.slice().reverse().map((r) => [r.runId, r.from, r.to, r.adId, r.status, r.rawClicks, r.dbClicks, r.windowsChecked, r.windowsCorrected])]);
    }
  });

  // Day buckets may start at midnight in any IANA zone: the browser's own first, then every zone it knows.
  const browserZone = Intl.DateTimeFormat().resolvedOptions().timeZone;
  const zones = typeof Intl.supportedValuesOf === 'function' ? Intl.supportedValuesOf('timeZone') : [];
  for (const zone of new Set([browserZone, ...zones])) {
    if (zone && zone !== 'UTC') {
      $('tz').add(new Option(zone, zone));
    }
  }

  charts.minute = makeChart('minute-chart', '#2f6fdf');
  charts.range = makeChart('range-chart', '#1f9d6b');
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
      onClick: (event, bars) => {
        if (bars.length > 0 && shown.top) {
          chartAd(shown.top.ads[bars[0].index].adId);
        }
      },
    },
  });
  $('api-key').value = state.key;
  start();
})();
