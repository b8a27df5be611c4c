// The one library every scenario shares: who a user is, what it does, what is measured, and
// the thresholds that fail a run. A scenario file only chooses a profile (users, rate, length).
//
// One VU is one user, for the whole run: it logs in once, or resumes a remembered session
// (its own source address, so the per-address limits see one client each), holds one WebSocket, refreshes its token before it
// expires, and fires HTTP requests from timers at its own fixed rate whether or not earlier
// ones have answered — an open model, so the offered load (users x rate) stays constant when
// the system slows down, which is what makes constant-arrival-rate honest. A k6
// arrival-rate pool cannot do this: its VUs share no memory, so "the same user" (token,
// socket, address) cannot follow the iterations from VU to VU.
//
// Inputs (environment): USERS_FILE (JSON written by the harness), BASE_URL (one gateway, or
// comma-separated gateways: user i uses gateway i mod n), PASSWORD, and the profile overrides
// USERS, USER_OFFSET, SHARDS, DURATION, RAMP, RATE_PER_USER, REFRESH_AFTER_S, MIN_RPS,
// SUMMARY_FILE.
import http from 'k6/http';
import exec from 'k6/execution';
import { check, sleep } from 'k6';
import { SharedArray } from 'k6/data';
import { Counter, Rate, Trend } from 'k6/metrics';
import { setInterval, setTimeout, clearInterval, clearTimeout } from 'k6/timers';
import { WebSocket } from 'k6/experimental/websockets';

// One SharedArray per list: an element is decoded on each access, so elements stay small.
const USERS = new SharedArray('users', () => JSON.parse(open(__ENV.USERS_FILE)).users);
const IDS = new SharedArray('ids', () => JSON.parse(open(__ENV.USERS_FILE)).ids);
// A returning user's stored refresh token ("" for one who signs in with the password).
const REMEMBERED = new SharedArray('remembered', () => JSON.parse(open(__ENV.USERS_FILE)).remembered || []);
const GATEWAYS = (__ENV.BASE_URL || 'https://127.0.0.1:8443').split(',');
const PASSWORD = __ENV.PASSWORD || 'agora-seed-password';

export const postDelivery = new Trend('post_delivery_ms', true);
export const wsDropped = new Counter('ws_dropped');
export const wsEvents = new Counter('ws_events');
export const rateLimited = new Counter('rate_limited');
export const postsCreated = new Counter('posts_created');
export const sessionsOk = new Rate('sessions_ok');

// What a user does per request, by weight: reads far outnumber writes (10% writes).
const ACTIONS = [
  ['feed', 38], ['post', 18], ['profile', 10], ['user_posts', 10], ['notifications', 6],
  ['presence', 4], ['me', 4], ['create_post', 5], ['like', 3], ['follow', 2],
];
const TOTAL_WEIGHT = ACTIONS.reduce((sum, [, w]) => sum + w, 0);
const GROUPS = ACTIONS.map(([name]) => name).concat(['login', 'refresh']);

function seconds(text) {
  const match = /^(\d+(?:\.\d+)?)(ms|s|m|h)$/.exec(text);
  if (!match) throw new Error(`bad duration ${text}`);
  return Number(match[1]) * { ms: 0.001, s: 1, m: 60, h: 3600 }[match[2]];
}

// The run's shape: every profile value may be overridden from the environment (the harness's
// short runs, the test's 30-second smoke).
export function profile(defaults) {
  const env = (name, fallback) => (__ENV[name] !== undefined && __ENV[name] !== '' ? __ENV[name] : fallback);
  return {
    name: defaults.name,
    users: Number(env('USERS', defaults.users)),
    offset: Number(env('USER_OFFSET', 0)),
    duration: seconds(env('DURATION', defaults.duration)),
    ramp: seconds(env('RAMP', defaults.ramp)),
    ratePerUser: Number(env('RATE_PER_USER', defaults.ratePerUser)),
    refreshAfter: Number(env('REFRESH_AFTER_S', 0)),
    // The req/s floor is the whole test's: each of SHARDS k6 processes carries its share.
    minRps: Number(env('MIN_RPS', defaults.minRps || 0)) / Number(env('SHARDS', 1)),
  };
}

export function buildOptions(p) {
  const thresholds = {
    // Every API request (not the deliberately slow password hash of login and refresh).
    'http_req_duration{kind:api}': ['p(95)<200'],
    'http_req_duration{kind:credentials}': ['p(95)<1000'],
    http_req_failed: ['rate<0.001'],
    checks: ['rate>0.999'],
    post_delivery_ms: ['p(95)<250'],
    ws_connecting: ['p(95)<1000'],
    ws_dropped: ['count<1'],
    sessions_ok: ['rate>0.999'],
  };
  // A sub-metric per route group, so the summary shows p50/p95/p99 of each. k6 only keeps
  // sub-metrics that have a threshold; this one ('max>=0') is for display and never fails
  // a run: the groups' p95 are judged together above (a group of 30 requests in a short run
  // has a p95 that is its second-worst request).
  for (const group of GROUPS) {
    thresholds[`http_req_duration{group:${group}}`] = ['max>=0'];
  }
  if (p.minRps > 0) thresholds.http_reqs = [`rate>${p.minRps}`];
  return {
    scenarios: {
      users: {
        executor: 'per-vu-iterations',
        vus: p.users,
        iterations: 1,
        maxDuration: `${Math.ceil(p.duration + 60)}s`,
        gracefulStop: '30s',
      },
    },
    thresholds,
    // The gateway's development certificate is self-signed; the path and cost are TLS's.
    insecureSkipTLSVerify: true,
    summaryTrendStats: ['avg', 'min', 'med', 'p(90)', 'p(95)', 'p(99)', 'max', 'count'],
    discardResponseBodies: false,
    setupTimeout: '60s',
  };
}

function pick(list) {
  return list[Math.floor(Math.random() * list.length)];
}

function chooseAction() {
  let roll = Math.random() * TOTAL_WEIGHT;
  for (const [name, weight] of ACTIONS) {
    roll -= weight;
    if (roll < 0) return name;
  }
  return 'feed';
}

function params(user, group, name) {
  const headers = { 'Content-Type': 'application/json' };
  if (user && user.token) headers.Authorization = `Bearer ${user.token}`;
  const kind = group === 'login' || group === 'refresh' ? 'credentials' : 'api';
  return { headers, tags: { group, kind, name: name || group } };
}

function counted(res, group) {
  if (res.status === 429) rateLimited.add(1, { group });
  return res;
}

// The user's next request, fired without waiting for the previous one.
function fire(user, p) {
  const base = user.base;
  const action = chooseAction();
  const someone = IDS[Math.floor(Math.random() * IDS.length)];
  const post = user.seenPosts.length ? pick(user.seenPosts) : null;
  let request;
  switch (action) {
    case 'feed':
      request = ['GET', `${base}/api/v1/posts/feed?limit=20`, null, '/api/v1/posts/feed'];
      break;
    case 'post':
      if (!post) return fire(user, p);
      request = ['GET', `${base}/api/v1/posts/${post}`, null, '/api/v1/posts/{post_id}'];
      break;
    case 'profile':
      request = ['GET', `${base}/api/v1/auth/users/${someone}`, null, '/api/v1/auth/users/{user_id}'];
      break;
    case 'user_posts':
      request = ['GET', `${base}/api/v1/posts/users/${someone}?limit=20`, null, '/api/v1/posts/users/{user_id}'];
      break;
    case 'notifications':
      request = ['GET', `${base}/api/v1/posts/notifications?limit=20`, null, '/api/v1/posts/notifications'];
      break;
    case 'presence':
      // Presence is visible to the user and to those the user follows (docs/security.md):
      // a random user's would be a 404; the client's own is always answered.
      request = ['GET', `${base}/api/v1/realtime/presence/${user.id}`, null, '/api/v1/realtime/presence/{user_id}'];
      break;
    case 'me':
      request = ['GET', `${base}/api/v1/auth/me`, null, '/api/v1/auth/me'];
      break;
    case 'create_post': {
      // The send time rides in the content: followers' sockets measure delivery from it.
      const content = `k6 ${p.name} from ${user.index} at t=${Date.now()}`;
      request = ['POST', `${base}/api/v1/posts`, JSON.stringify({ content }), '/api/v1/posts'];
      break;
    }
    case 'like':
      if (!post) return fire(user, p);
      request = ['PUT', `${base}/api/v1/posts/${post}/like`, null, '/api/v1/posts/{post_id}/like'];
      break;
    case 'follow':
      if (someone === user.id) return fire(user, p);
      request = ['PUT', `${base}/api/v1/posts/follows/${someone}`, null, '/api/v1/posts/follows/{user_id}'];
      break;
    default:
      throw new Error(action);
  }
  const [method, url, body, name] = request;
  user.inFlight += 1;
  return http.asyncRequest(method, url, body, params(user, action, name)).then((res) => {
    user.inFlight -= 1;
    counted(res, action);
    const expected = action === 'create_post' ? 201 : 200;
    const ok = check(res, { [`${action} ${expected}`]: (r) => r.status === expected || (r.status === 204 && method !== 'GET') });
    if (!ok) return;
    if (action === 'create_post') {
      postsCreated.add(1);
      // The harness's ledger of acknowledged writes: each must be in PostgreSQL and feeds.
      console.log(JSON.stringify({ created: res.json('id'), author: user.id }));
    } else if (action === 'feed' || action === 'user_posts') {
      const items = res.json('items') || [];
      for (const item of items.slice(0, 5)) remember(user, item.id);
    }
  });
}

function remember(user, postId) {
  user.seenPosts.push(postId);
  if (user.seenPosts.length > 50) user.seenPosts.shift();
}

function login(user) {
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const res = counted(
      http.post(`${user.base}/api/v1/auth/login`, JSON.stringify({ username: user.username, password: PASSWORD }), params(null, 'login')),
      'login',
    );
    if (check(res, { 'login 200': (r) => r.status === 200 })) {
      user.token = res.json('access_token');
      user.refresh = res.json('refresh_token');
      user.expiresIn = res.json('expires_in');
      return true;
    }
    // Back off (as a client would), never a retry storm against a saturated auth.
    sleep(Number(res.headers['Retry-After']) || 2 ** (attempt + 1) * (1 + Math.random()));
  }
  return false;
}

// A returning user resumes its remembered session: one refresh, no password hash. Like an
// app, it retries a busy auth with backoff and asks for the password only when the session
// is refused (401): falling back on any failure turned an overloaded auth's timeouts into
// password hashes, the costliest work there is. 'ok', 'refused' (sign in) or 'failed'.
function resume(user, token) {
  const body = JSON.stringify({ refresh_token: token });
  for (let attempt = 0; attempt < 3; attempt += 1) {
    const res = counted(http.post(`${user.base}/api/v1/auth/refresh`, body, params(null, 'refresh')), 'refresh');
    if (check(res, { 'resume 200': (r) => r.status === 200 })) {
      user.token = res.json('access_token');
      user.refresh = res.json('refresh_token');
      user.expiresIn = res.json('expires_in');
      return 'ok';
    }
    if (res.status === 401) return 'refused';
    sleep(Number(res.headers['Retry-After']) || 2 ** (attempt + 1) * (1 + Math.random()));
  }
  return 'failed';
}

function refresh(user) {
  const body = JSON.stringify({ refresh_token: user.refresh });
  return http.asyncRequest('POST', `${user.base}/api/v1/auth/refresh`, body, params(null, 'refresh')).then((res) => {
    counted(res, 'refresh');
    if (check(res, { 'refresh 200': (r) => r.status === 200 })) {
      user.token = res.json('access_token');
      user.refresh = res.json('refresh_token');
    }
  });
}

// The socket: post.created events from followees measure delivery; a close the user did not
// ask for is a dropped socket, counted and reconnected while the run lasts.
function openSocket(user, deadline) {
  const wsBase = user.base.replace(/^http/, 'ws');
  const ws = new WebSocket(`${wsBase}/ws`, null, {
    headers: { Authorization: `Bearer ${user.token}` },
    tags: { group: 'ws', name: '/ws' },
  });
  let pinger = null;
  ws.onopen = () => {
    // A reconnect that was still connecting when the user's session ended: an open socket
    // with its pinger would keep the VU alive past the scenario's end.
    if (user.closing) {
      ws.close();
      return;
    }
    user.socketOpened = true;
    // A close in flight (its onclose not yet run) makes send throw InvalidStateError, and a
    // throw in a timer aborts the VU's iteration mid-session.
    pinger = setInterval(() => {
      if (ws.readyState === 1) ws.send(JSON.stringify({ type: 'ping' }));
    }, 15000);
  };
  ws.onmessage = (event) => {
    const message = JSON.parse(event.data);
    wsEvents.add(1, { type: message.type });
    if (message.type === 'post.created' && message.post) {
      remember(user, message.post.id);
      const sent = /^k6 \S+ from \d+ at t=(\d+)$/.exec(message.post.content || '');
      if (sent) postDelivery.add(Date.now() - Number(sent[1]));
    }
  };
  ws.onerror = () => {};
  ws.onclose = () => {
    if (pinger !== null) clearInterval(pinger);
    if (user.closing || Date.now() >= deadline) return;
    wsDropped.add(1);
    setTimeout(() => {
      if (!user.closing && Date.now() < deadline) user.socket = openSocket(user, deadline);
    }, 1000 + Math.random() * 2000);
  };
  return ws;
}

// One user's whole session (the scenario's single iteration per VU).
export function session(p) {
  const index = exec.vu.idInTest - 1 + p.offset;
  if (index >= USERS.length) throw new Error(`user ${index} was not seeded (USERS_FILE has ${USERS.length})`);
  const [username, id] = USERS[index];
  const started = exec.scenario.startTime;
  const deadline = started + p.duration * 1000;
  // Users arrive spread evenly over the ramp; each then stays to the end.
  const arrival = (p.ramp * (exec.vu.idInTest - 1)) / Math.max(1, p.users);
  const wait = started + arrival * 1000 - Date.now();
  if (wait > 0) sleep(wait / 1000);
  const user = {
    index, id, username, base: GATEWAYS[index % GATEWAYS.length],
    token: null, refresh: null, expiresIn: 900, seenPosts: [], inFlight: 0, closing: false,
    socket: null, socketOpened: false,
  };
  const remembered = index < REMEMBERED.length ? REMEMBERED[index] : '';
  const resumed = remembered ? resume(user, remembered) : 'refused';
  if (resumed !== 'ok' && !(resumed === 'refused' && login(user))) {
    sessionsOk.add(false);
    return;
  }
  user.socket = openSocket(user, deadline);
  // Refresh a little before expiry (or sooner when a short run asks, to exercise it).
  const refreshEvery = (p.refreshAfter > 0 ? p.refreshAfter : user.expiresIn * 0.8) * 1000;
  const refresher = setInterval(() => refresh(user), refreshEvery);
  const interval = 1000 / p.ratePerUser;
  // Evenly paced with +-20% jitter and a random phase: the aggregate is a constant rate.
  let ticker = null;
  const tick = () => {
    if (Date.now() >= deadline) return;
    fire(user, p);
    ticker = setTimeout(tick, interval * (0.8 + Math.random() * 0.4));
  };
  ticker = setTimeout(tick, Math.random() * interval);
  const stopper = setTimeout(() => {
    user.closing = true;
    clearTimeout(ticker);
    clearInterval(refresher);
    sessionsOk.add(user.socketOpened);
    if (user.socket) user.socket.close();
  }, Math.max(0, deadline - Date.now()));
  return stopper;
}

// k6's end-of-test summary as JSON for the harness (SUMMARY_FILE), and the usual text.
export function summary(data) {
  const out = {};
  if (__ENV.SUMMARY_FILE) out[__ENV.SUMMARY_FILE] = JSON.stringify(data, null, 2);
  out.stdout = `\nk6 finished: ${data.metrics.http_reqs ? data.metrics.http_reqs.values.count : 0} requests; the harness prints the summary\n`;
  return out;
}
