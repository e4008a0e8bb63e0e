// Stratus console: plain JavaScript, no build step, no third-party code.
// It is a client of the registry's own APIs (/v2 and Quay's /api/v1): every action is
// authorized by the server; the console only hides what the server says one may not do.
"use strict";

const SESSION_KEY = "stratus.console.session";
const PAGE_REPOS = 25;
const PAGE_TAGS = 50;
const MAX_CATALOG = 10000;
const REFERRER_DEPTH = 3;

// ---------------------------------------------------------------------------------------
// Session: tokens from /v2/auth, kept in sessionStorage (this tab only), never a password.

let session = readSession();
let sessionEnded = false;
let me = null; // GET /api/v1/user/
const scopedTokens = new Map(); // scope -> {token, expires}
const repoInfo = new Map(); // repository -> Promise of GET /api/v1/repository/<name>

function readSession() {
  try {
    return JSON.parse(sessionStorage.getItem(SESSION_KEY) || "null");
  } catch (_) {
    return null;
  }
}

function saveSession(value) {
  session = value;
  if (value) sessionStorage.setItem(SESSION_KEY, JSON.stringify(value));
  else sessionStorage.removeItem(SESSION_KEY);
  scopedTokens.clear();
  repoInfo.clear();
}

class HttpError extends Error {
  constructor(status, message) {
    super(message || `HTTP ${status}`);
    this.status = status;
  }
}

async function errorOf(res) {
  let message = "";
  try {
    const body = await res.json();
    const first = (body.errors || [])[0];
    message = (first && (first.message || first.code)) || body.message || body.error || "";
  } catch (_) {
    message = res.statusText;
  }
  return new HttpError(res.status, message);
}

function form(fields) {
  const body = new URLSearchParams();
  for (const [k, v] of Object.entries(fields)) if (v) body.append(k, v);
  return body;
}

async function tokenRequest(fields) {
  const res = await fetch("/v2/auth", {
    method: "POST",
    headers: { "Content-Type": "application/x-www-form-urlencoded" },
    body: form({ client_id: "stratus-console", ...fields }),
    credentials: "omit",
    cache: "no-store",
  });
  if (!res.ok) throw await errorOf(res);
  return res.json();
}

function expiry(answer) {
  return Date.now() + (answer.expires_in || 60) * 1000;
}

async function signIn(username, password) {
  const answer = await tokenRequest({
    grant_type: "password",
    username,
    password,
    access_type: "offline",
  });
  saveSession({
    username,
    refresh: answer.refresh_token,
    access: answer.access_token,
    expires: expiry(answer),
  });
  sessionEnded = false;
}

function signOut(ended) {
  saveSession(null);
  sessionEnded = Boolean(ended);
}

// An access token naming the signed-in account (what /api/v1 checks), or null.
async function accessToken(force) {
  if (!session) return null;
  if (!force && session.access && session.expires - Date.now() > 20000) return session.access;
  try {
    const answer = await tokenRequest({ grant_type: "refresh_token", refresh_token: session.refresh });
    saveSession({ ...session, access: answer.access_token, expires: expiry(answer) });
    return session.access;
  } catch (error) {
    if (error.status === 401) {
      signOut(true);
      await loadMe();
      throw new HttpError(401, "Your session ended: sign in again.");
    }
    throw error;
  }
}

// A registry token for a challenge's scope: the Docker token protocol, as clients do it.
async function scopedToken(scope, service, fresh) {
  const cached = scopedTokens.get(scope);
  if (!fresh && cached && cached.expires - Date.now() > 10000) return cached.token;
  let answer;
  if (session) {
    try {
      answer = await tokenRequest({
        grant_type: "refresh_token",
        refresh_token: session.refresh,
        service,
        scope,
      });
    } catch (error) {
      if (error.status === 401) {
        signOut(true);
        await loadMe();
      }
      throw error;
    }
  } else {
    const query = new URLSearchParams();
    if (service) query.set("service", service);
    if (scope) query.set("scope", scope);
    const res = await fetch(`/v2/auth?${query}`, { credentials: "omit", cache: "no-store" });
    if (!res.ok) throw await errorOf(res);
    answer = await res.json();
  }
  scopedTokens.set(scope, { token: answer.token || answer.access_token, expires: expiry(answer) });
  return scopedTokens.get(scope).token;
}

function challenge(header) {
  const fields = {};
  for (const m of (header || "").matchAll(/(\w+)="([^"]*)"/g)) fields[m[1]] = m[2];
  return fields;
}

function guessScope(path) {
  if (path.startsWith("/v2/_catalog")) return "registry:catalog:*";
  const m = path.match(/^\/v2\/(.+?)\/(manifests|referrers|tags|blobs)\//);
  return m ? `repository:${m[1]}:pull` : null;
}

// GET on /v2: answers a Bearer challenge once, with a token for what it asked.
async function registry(path, accept) {
  const headers = { Accept: accept || "application/json" };
  const guess = guessScope(path);
  const known = guess && scopedTokens.get(guess);
  if (known && known.expires - Date.now() > 10000) headers.Authorization = `Bearer ${known.token}`;
  let res = await fetch(path, { headers, credentials: "omit" });
  if (res.status === 401) {
    const asked = challenge(res.headers.get("WWW-Authenticate"));
    if (asked.realm !== undefined) {
      headers.Authorization = `Bearer ${await scopedToken(asked.scope || "", asked.service, true)}`;
      res = await fetch(path, { headers, credentials: "omit" });
    }
  }
  if (!res.ok) throw await errorOf(res);
  return res;
}

// The management API (Quay's /api/v1), as the signed-in account or anonymously.
async function api(path, options = {}) {
  const send = async (force) => {
    const headers = { Accept: "application/json" };
    const token = await accessToken(force);
    if (token) headers.Authorization = `Bearer ${token}`;
    const init = { method: options.method || "GET", headers, credentials: "omit", cache: "no-store" };
    if (options.body !== undefined) {
      headers["Content-Type"] = "application/json";
      init.body = JSON.stringify(options.body);
    }
    return fetch(`/api/v1/${path}`, init);
  };
  let res = await send(false);
  if (res.status === 401 && session) res = await send(true);
  if (!res.ok) throw await errorOf(res);
  if (res.status === 204) return null;
  const text = await res.text();
  return text ? JSON.parse(text) : null;
}

async function loadMe() {
  try {
    me = await api("user/");
  } catch (_) {
    me = { anonymous: true };
  }
  renderWho();
  return me;
}

function signedIn() {
  return me && !me.anonymous;
}

function administered() {
  return ((me && me.organizations) || []).filter((o) => o.is_org_admin).map((o) => o.name);
}

// Organizations (not one's own user namespace) that make the Administration page worth a link.
function administersOthers() {
  return signedIn() && (me.super_user || administered().some((name) => name !== me.username));
}

// ---------------------------------------------------------------------------------------
// DOM helpers: elements are built, never parsed from strings.

function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [key, value] of Object.entries(attrs || {})) {
    if (value === null || value === undefined || value === false) continue;
    if (key.startsWith("on")) el.addEventListener(key.slice(2), value);
    else if (key === "class") el.className = value;
    else if (value === true) el.setAttribute(key, "");
    else el.setAttribute(key, String(value));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === null || child === undefined || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
  return el;
}

const main = () => document.getElementById("main");

// Each navigation's number: a view whose data arrives after the user moved on draws nothing.
let navigation = 0;
const stale = (id) => id !== navigation;

function show(title, ...nodes) {
  document.title = title ? `${title} · Stratus` : "Stratus";
  const el = main();
  el.replaceChildren(...nodes.flat(Infinity).filter(Boolean));
  el.setAttribute("aria-busy", "false");
}

function loading(what) {
  const el = main();
  el.setAttribute("aria-busy", "true");
  el.replaceChildren(h("p", { class: "state" }, `Loading ${what}…`));
}

function toast(message) {
  const el = document.getElementById("toast");
  el.textContent = message;
  el.classList.add("shown");
  clearTimeout(toast.timer);
  toast.timer = setTimeout(() => el.classList.remove("shown"), 2500);
}

function errorState(error, what) {
  if (error.status === 401) {
    const text = sessionEnded || session
      ? "Your session ended. Sign in again to continue."
      : `Sign in to see ${what || "this"}.`;
    return h("div", { class: "state", "data-state": "401" },
      h("p", {}, text),
      h("button", { type: "button", class: "primary", onclick: openSignIn }, "Sign in"));
  }
  if (error.status === 403) {
    return h("div", { class: "state error", "data-state": "403" },
      h("p", {}, `You do not have access to ${what || "this"}.`),
      h("p", { class: "hint" }, error.message));
  }
  if (error.status === 404) {
    return h("div", { class: "state", "data-state": "404" },
      h("p", {}, what ? `Not found: ${what}.` : "Not found."),
      h("p", {}, h("a", { href: "#/" }, "Back to the repositories")));
  }
  return h("div", { class: "state error", "data-state": "error" },
    h("p", {}, `Something went wrong: ${error.message}`));
}

function emptyState(text, ...more) {
  return h("div", { class: "state", "data-state": "empty" }, h("p", {}, text), ...more);
}

// ---------------------------------------------------------------------------------------
// Formatting: sizes, relative and exact times, countdowns.

function bytes(n) {
  if (n === null || n === undefined) return "—";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let value = n;
  let unit = 0;
  while (value >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  return `${unit ? value.toFixed(value < 10 ? 1 : 0) : value} ${units[unit]}`;
}

const relativeFormat = new Intl.RelativeTimeFormat(undefined, { numeric: "auto" });

function relative(seconds) {
  const diff = seconds - Date.now() / 1000;
  const abs = Math.abs(diff);
  const steps = [[60, "second", 1], [3600, "minute", 60], [86400, "hour", 3600],
    [86400 * 30, "day", 86400], [86400 * 365, "month", 86400 * 30], [Infinity, "year", 86400 * 365]];
  for (const [limit, unit, size] of steps) {
    if (abs < limit) return relativeFormat.format(Math.round(diff / size), unit);
  }
  return "";
}

function exact(seconds) {
  return `${new Date(seconds * 1000).toISOString().replace("T", " ").slice(0, 19)} UTC`;
}

function when(seconds) {
  if (!seconds) return "—";
  const iso = new Date(seconds * 1000).toISOString();
  return h("time", { datetime: iso, title: exact(seconds), "data-relative": seconds },
    h("span", { class: "rel" }, relative(seconds)), h("span", { class: "exact" }, exact(seconds)));
}

function countdownText(end) {
  let left = Math.floor(end - Date.now() / 1000);
  if (left <= 0) return "expired";
  const days = Math.floor(left / 86400);
  left %= 86400;
  const hours = Math.floor(left / 3600);
  left %= 3600;
  const minutes = Math.floor(left / 60);
  const secs = left % 60;
  const parts = days ? [`${days}d`, `${hours}h`, `${minutes}m`] : hours
    ? [`${hours}h`, `${minutes}m`, `${secs}s`] : [`${minutes}m`, `${secs}s`];
  return `in ${parts.join(" ")}`;
}

function countdown(end) {
  if (!end) return h("span", { class: "hint" }, "never");
  return h("span", { class: "countdown", "data-end": end, title: `expires ${exact(end)}` },
    countdownText(end), h("span", { class: "exact" }, exact(end)));
}

function tick() {
  for (const el of document.querySelectorAll(".countdown[data-end]")) {
    const end = Number(el.dataset.end);
    el.firstChild.textContent = countdownText(end);
    el.classList.toggle("soon", end - Date.now() / 1000 < 3600);
  }
  for (const el of document.querySelectorAll("time[data-relative] .rel")) {
    el.textContent = relative(Number(el.parentElement.dataset.relative));
  }
}

function short(digest) {
  const [algo, hex] = String(digest).split(":");
  return hex ? `${algo}:${hex.slice(0, 12)}` : digest;
}

async function copy(text) {
  try {
    await navigator.clipboard.writeText(text);
  } catch (_) {
    const area = h("textarea", { class: "visually-hidden", "aria-hidden": "true" });
    area.value = text;
    document.body.append(area);
    area.select();
    document.execCommand("copy");
    area.remove();
  }
  toast("Copied to the clipboard");
}

function copyButton(text, label) {
  return h("button", { type: "button", class: "small", "aria-label": label, "data-copy": text,
    onclick: () => copy(text) }, "Copy");
}

function digestCell(name, digest, tag) {
  const href = `#/m/${name}@${digest}${tag ? `?tag=${encodeURIComponent(tag)}` : ""}`;
  return h("span", { class: "digest" },
    h("a", { href, class: "mono", title: digest }, short(digest)),
    copyButton(digest, `Copy digest ${digest}`));
}

function table(caption, headers, rows) {
  return h("div", { class: "table-wrap" },
    h("table", {},
      h("caption", { class: "visually-hidden" }, caption),
      h("thead", {}, h("tr", {}, headers.map((x) => h("th", { scope: "col" }, x)))),
      h("tbody", {}, rows)));
}

function confirmAction(text) {
  const dialog = document.getElementById("confirm");
  document.getElementById("confirm-text").textContent = text;
  return new Promise((resolve) => {
    dialog.addEventListener("close", () => resolve(dialog.returnValue === "yes"), { once: true });
    dialog.returnValue = "";
    dialog.showModal();
    document.getElementById("confirm-no").focus();
  });
}

async function act(button, work, done) {
  button.disabled = true;
  try {
    await work();
    if (done) toast(done);
  } catch (error) {
    toast(error.status === 403 ? `Not allowed: ${error.message}` : `Failed: ${error.message}`);
  } finally {
    button.disabled = false;
  }
}

// ---------------------------------------------------------------------------------------
// Header: who is signed in.

function renderWho() {
  const who = document.getElementById("who");
  document.getElementById("nav-admin").hidden = !administersOthers();
  if (signedIn() && me.username === "local" && me.super_user && !session) {
    who.replaceChildren(h("span", { class: "badge warn", title: "STRATUS_AUTH is off" }, "auth off: local administrator"));
    return;
  }
  if (signedIn()) {
    who.replaceChildren(
      h("span", {}, "Signed in as ", h("strong", { id: "who-name" }, me.username)),
      h("button", { type: "button", id: "signout", onclick: () => {
        signOut(false);
        loadMe().then(() => { toast("Signed out"); route(); });
      } }, "Sign out"));
  } else {
    who.replaceChildren(h("button", { type: "button", class: "primary", id: "signin-open", onclick: openSignIn }, "Sign in"));
  }
}

function openSignIn() {
  const dialog = document.getElementById("signin");
  document.getElementById("signin-error").textContent = "";
  document.getElementById("signin-password").value = "";
  dialog.showModal();
  document.getElementById("signin-user").focus();
}

function setupSignIn() {
  const dialog = document.getElementById("signin");
  const submit = document.getElementById("signin-submit");
  document.getElementById("signin-cancel").addEventListener("click", () => dialog.close());
  document.getElementById("signin-form").addEventListener("submit", async (event) => {
    event.preventDefault();
    const user = document.getElementById("signin-user").value.trim();
    const password = document.getElementById("signin-password").value;
    submit.disabled = true;
    try {
      await signIn(user, password);
      document.getElementById("signin-password").value = "";
      dialog.close();
      await loadMe();
      toast(`Signed in as ${user}`);
      route();
    } catch (error) {
      document.getElementById("signin-error").textContent = error.status === 429
        ? "Too many failed sign-ins: wait a few minutes."
        : error.status === 401 ? "Wrong username or password." : error.message;
    } finally {
      submit.disabled = false;
    }
  });
}

// ---------------------------------------------------------------------------------------
// Repository list.

let catalog = null; // all names the caller may see (up to MAX_CATALOG)
const listState = { filter: "", page: 0 };

async function loadCatalog() {
  const names = [];
  let path = "/v2/_catalog?n=1000";
  while (path && names.length < MAX_CATALOG) {
    const res = await registry(path);
    names.push(...((await res.json()).repositories || []));
    const link = res.headers.get("Link");
    const next = link && link.match(/<([^>]+)>;\s*rel="next"/);
    path = next ? next[1] : null;
  }
  return names;
}

function info(name) {
  if (!repoInfo.has(name)) repoInfo.set(name, api(`repository/${name}`));
  return repoInfo.get(name);
}

async function viewRepos() {
  const id = navigation;
  loading("repositories");
  try {
    catalog = await loadCatalog();
  } catch (error) {
    if (stale(id)) return;
    show("Repositories", h("h1", {}, "Repositories"), errorState(error, "the repositories"));
    return;
  }
  if (stale(id)) return;
  const search = h("input", { type: "search", id: "repo-filter", "aria-label": "Filter repositories",
    placeholder: "Filter by name", value: listState.filter, autocomplete: "off" });
  const body = h("div", { id: "repo-list" });
  search.addEventListener("input", () => {
    listState.filter = search.value.trim().toLowerCase();
    listState.page = 0;
    renderRepoList(body);
  });
  show("Repositories",
    h("h1", {}, "Repositories"),
    h("div", { class: "toolbar" },
      h("label", { for: "repo-filter", class: "visually-hidden" }, "Filter repositories"), search,
      h("span", { class: "hint" }, `${catalog.length}${catalog.length >= MAX_CATALOG ? "+" : ""} visible to you`)),
    body);
  renderRepoList(body);
}

function renderRepoList(body) {
  const matching = catalog.filter((n) => n.includes(listState.filter));
  if (!catalog.length) {
    body.replaceChildren(emptyState(
      signedIn() ? "No repositories yet." : "No public repositories yet.",
      h("p", { class: "hint" }, "Push one: ", h("code", {},
        `skopeo copy docker://docker.io/library/alpine:latest docker://${location.host}/demo/alpine:latest`)),
      signedIn() ? null : h("p", {}, h("button", { type: "button", onclick: openSignIn }, "Sign in"), " to see private ones.")));
    return;
  }
  if (!matching.length) {
    body.replaceChildren(emptyState(`No repository name contains “${listState.filter}”.`));
    return;
  }
  const pages = Math.ceil(matching.length / PAGE_REPOS);
  listState.page = Math.min(listState.page, pages - 1);
  const slice = matching.slice(listState.page * PAGE_REPOS, (listState.page + 1) * PAGE_REPOS);
  const rows = slice.map((name) => {
    const tags = h("td", { class: "num" }, "…");
    const pushed = h("td", {}, "…");
    const visibility = h("td", {}, "…");
    info(name).then((repo) => {
      tags.textContent = `${repo.tag_count}${repo.tag_count_capped ? "+" : ""}`;
      pushed.replaceChildren(when(repo.last_modified));
      visibility.replaceChildren(h("span", { class: `badge ${repo.is_public ? "public" : "private"}` },
        repo.is_public ? "public" : "private"));
    }, () => {
      tags.textContent = "—";
      pushed.textContent = "—";
      visibility.textContent = "—";
    });
    return h("tr", { "data-repo": name },
      h("th", { scope: "row" }, h("a", { href: `#/r/${name}` }, name)), tags, pushed, visibility);
  });
  const pager = h("div", { class: "pager" },
    h("button", { type: "button", disabled: listState.page === 0,
      onclick: () => { listState.page -= 1; renderRepoList(body); } }, "Previous"),
    h("span", {}, `Page ${listState.page + 1} of ${pages} · ${matching.length} repositories`),
    h("button", { type: "button", disabled: listState.page >= pages - 1,
      onclick: () => { listState.page += 1; renderRepoList(body); } }, "Next"));
  body.replaceChildren(table("Repositories", ["Repository", "Tags", "Last push", "Visibility"], rows), pager);
}

// ---------------------------------------------------------------------------------------
// Repository page: tags, pull commands, and for admins visibility and permissions.

function pullCommands(name, tag, kind) {
  const ref = `${location.host}/${name}:${tag}`;
  const plain = location.protocol === "http:";
  const chart = name.split("/").pop();
  const base = name.split("/").slice(0, -1).join("/");
  if (kind === "helm") {
    return [["helm", `helm pull ${plain ? "--plain-http " : ""}oci://${location.host}${base ? `/${base}` : ""}/${chart} --version ${tag}`],
      ["oras", `oras pull ${plain ? "--plain-http " : ""}${ref}`]];
  }
  if (kind === "artifact") return [["oras", `oras pull ${plain ? "--plain-http " : ""}${ref}`]];
  return [["docker", `docker pull ${ref}`],
    ["podman", `podman pull ${plain ? "--tls-verify=false " : ""}${ref}`],
    ["oras", `oras copy ${plain ? "--from-plain-http " : ""}${ref} --to-oci-layout ./${chart}:${tag}`]];
}

function pullPanel(name, tag) {
  const panel = h("section", { class: "panel", id: "pull", "aria-labelledby": "pull-title" });
  const render = (row) => {
    if (!row) {
      panel.replaceChildren(h("h2", { id: "pull-title" }, "Pull"), h("p", { class: "hint" }, "No tags to pull."));
      return;
    }
    const commands = pullCommands(name, row.name, row.kind);
    const output = h("pre", { id: "pull-command", class: "mono" });
    const copyIt = h("button", { type: "button", id: "pull-copy" }, "Copy");
    const tabs = commands.map(([tool, command], i) => h("button", {
      type: "button", role: "tab", id: `pull-${tool}`, "aria-selected": i === 0 ? "true" : "false",
      "aria-controls": "pull-command",
      onclick: (event) => select(event.currentTarget, command),
      onkeydown: (event) => {
        if (event.key !== "ArrowRight" && event.key !== "ArrowLeft") return;
        const all = [...event.currentTarget.parentElement.children];
        const next = all[(all.indexOf(event.currentTarget) + (event.key === "ArrowRight" ? 1 : all.length - 1)) % all.length];
        next.focus();
        next.click();
      },
    }, tool));
    const select = (tab, command) => {
      for (const t of tabs) t.setAttribute("aria-selected", t === tab ? "true" : "false");
      output.textContent = command;
      copyIt.onclick = () => copy(command);
    };
    panel.replaceChildren(
      h("h2", { id: "pull-title" }, "Pull ", h("code", {}, `${name}:${row.name}`)),
      h("div", { role: "tablist", "aria-label": "Client" }, tabs),
      h("div", { class: "pull" }, output, copyIt));
    select(tabs[0], commands[0][1]);
  };
  render(tag);
  panel.show = render;
  return panel;
}

async function viewRepository(name) {
  const id = navigation;
  loading(name);
  const tagPage = (last) => api(`repository/${name}/tag/?limit=${PAGE_TAGS}${last ? `&last=${encodeURIComponent(last)}` : ""}`);
  let first = tagPage(""); // asked beside the repository: one round trip, not two
  first.catch(() => {});
  let repo;
  try {
    repo = await info(name);
  } catch (error) {
    repoInfo.delete(name);
    if (stale(id)) return;
    show(name, crumbs(name), h("h1", {}, name), errorState(error, `repository ${name}`));
    return;
  }
  if (stale(id)) return;
  const pull = pullPanel(name, null);
  const tagsBox = h("div", { id: "tags" });
  const nodes = [
    crumbs(name),
    h("h1", {}, name, " ", h("span", { class: `badge ${repo.is_public ? "public" : "private"}`, id: "visibility" },
      repo.is_public ? "public" : "private")),
    h("p", { class: "hint" }, `${repo.tag_count}${repo.tag_count_capped ? "+" : ""} ${repo.tag_count === 1 ? "tag" : "tags"} · last push `,
      repo.last_modified ? when(repo.last_modified) : "never",
      repo.can_admin ? " · you administer it" : repo.can_write ? " · you can push" : " · read only"),
    pull,
    h("h2", {}, "Tags"),
    tagsBox,
  ];
  if (repo.can_admin) nodes.push(adminPanel(name, repo));
  show(name, nodes);
  const cursors = [""];
  let page = 0;
  const load = async () => {
    tagsBox.setAttribute("aria-busy", "true");
    tagsBox.replaceChildren(h("p", { class: "state" }, "Loading tags…"));
    try {
      const pending = page === 0 && first ? first : tagPage(cursors[page]);
      first = null;
      const answer = await pending;
      if (answer.has_additional && answer.tags.length) cursors[page + 1] = answer.tags[answer.tags.length - 1].name;
      if (page === 0) pull.show(answer.tags.find((t) => t.name === "latest") || answer.tags[0] || null);
      renderTags(tagsBox, name, repo, answer, {
        page,
        previous: page > 0 ? () => { page -= 1; load(); } : null,
        next: answer.has_additional ? () => { page += 1; load(); } : null,
        reload: load,
        select: (row) => { pull.show(row); pull.querySelector("[role=tab]").focus(); },
      });
    } catch (error) {
      tagsBox.replaceChildren(errorState(error, "the tags"));
    }
    tagsBox.setAttribute("aria-busy", "false");
  };
  load();
}

function crumbs(name, digest) {
  return h("nav", { "aria-label": "Breadcrumb" }, h("p", { class: "crumbs" },
    h("a", { href: "#/" }, "Repositories"), " / ",
    digest ? h("a", { href: `#/r/${name}` }, name) : name,
    digest ? ` / ${short(digest)}` : ""));
}

function renderTags(box, name, repo, answer, paging) {
  if (!answer.tags.length) {
    box.replaceChildren(emptyState(paging.page ? "No more tags." : "This repository has no tags."));
    return;
  }
  const rows = answer.tags.map((row) => {
    const actions = [h("button", { type: "button", class: "small", "aria-label": `Pull commands for ${row.name}`,
      onclick: () => paging.select(row) }, "Pull")];
    if (repo.can_write) {
      actions.push(h("button", { type: "button", class: "small", "aria-label": `Set expiry of ${row.name}`,
        "data-action": "expiry", onclick: () => expiryDialog(name, row, paging.reload) }, "Expiry…"));
      actions.push(h("button", { type: "button", class: "small danger", "aria-label": `Delete tag ${row.name}`,
        "data-action": "delete", onclick: async (event) => {
          const button = event.currentTarget;
          if (!(await confirmAction(`Delete the tag ${name}:${row.name}? The manifest stays until nothing uses it.`))) return;
          await act(button, async () => {
            await api(`repository/${name}/tag/${encodeURIComponent(row.name)}`, { method: "DELETE" });
            repoInfo.delete(name);
            paging.reload();
          }, `Deleted ${row.name}`);
        } }, "Delete"));
    }
    return h("tr", { "data-tag": row.name },
      h("th", { scope: "row" }, h("a", { href: `#/m/${name}@${row.manifest_digest}?tag=${encodeURIComponent(row.name)}` }, row.name),
        row.kind && row.kind !== "image" ? [" ", h("span", { class: "badge" }, row.kind)] : null),
      h("td", {}, digestCell(name, row.manifest_digest, row.name)),
      h("td", { class: "num" }, bytes(row.size)),
      h("td", { class: "hide-narrow" }, row.is_manifest_list
        ? h("span", { class: "platforms" }, (row.platforms || []).map((p) => h("span", { class: "badge" }, p)))
        : "—"),
      h("td", {}, when(row.start_ts)),
      h("td", { class: "expires" }, countdown(row.end_ts)),
      h("td", {}, h("span", { class: "row-actions" }, actions)));
  });
  box.replaceChildren(
    table(`Tags of ${name}`, ["Tag", "Digest", "Size", "Platforms", "Pushed", "Expires", "Actions"], rows),
    h("div", { class: "pager" },
      h("button", { type: "button", disabled: !paging.previous, onclick: paging.previous }, "Previous"),
      h("span", {}, `Page ${paging.page + 1}`),
      h("button", { type: "button", disabled: !paging.next, onclick: paging.next, id: "tags-next" }, "Next")));
}

function expiryDialog(name, row, reload) {
  const input = h("input", { type: "datetime-local", id: "expiry-at", required: true });
  const error = h("p", { class: "error", role: "alert" });
  const dialog = h("dialog", { "aria-labelledby": "expiry-title" });
  const close = () => { dialog.close(); dialog.remove(); };
  const send = async (expiration) => {
    try {
      await api(`repository/${name}/tag/${encodeURIComponent(row.name)}`, { method: "PUT", body: { expiration } });
      close();
      toast(expiration ? `${row.name} expires ${exact(expiration)}` : `${row.name} no longer expires`);
      reload();
    } catch (e) {
      error.textContent = e.message;
    }
  };
  dialog.append(h("form", { onsubmit: (event) => {
    event.preventDefault();
    const at = new Date(input.value).getTime() / 1000;
    if (!at) { error.textContent = "Choose a date and time."; return; }
    send(Math.floor(at));
  } },
    h("h2", { id: "expiry-title" }, `Expiry of ${row.name}`),
    h("p", { class: "hint" }, row.end_ts ? `Now expires ${exact(row.end_ts)}.` : "Now never expires."),
    h("label", { for: "expiry-at" }, "Expires at (your local time)"), input, error,
    h("div", { class: "actions" },
      h("button", { type: "submit", class: "primary" }, "Set expiry"),
      h("button", { type: "button", id: "expiry-clear", onclick: () => send(null) }, "Clear expiry"),
      h("button", { type: "button", onclick: close }, "Cancel"))));
  document.body.append(dialog);
  dialog.addEventListener("cancel", () => dialog.remove());
  dialog.showModal();
  input.focus();
}

function adminPanel(name, repo) {
  const box = h("section", { class: "panel", id: "repo-admin", "aria-labelledby": "repo-admin-title" });
  const policies = policiesSection("repository", name);
  const render = async () => {
    let answer;
    try {
      answer = await api(`repository/${name}/permissions/`);
    } catch (error) {
      box.replaceChildren(h("h2", { id: "repo-admin-title" }, "Administration"), errorState(error, "the permissions"));
      return;
    }
    const visibility = h("button", { type: "button", id: "toggle-visibility", onclick: (event) => act(event.currentTarget, async () => {
      const next = answer.public ? "private" : "public";
      await api(`repository/${name}/changevisibility`, { method: "POST", body: { visibility: next } });
      repoInfo.delete(name);
      const badge = document.getElementById("visibility");
      if (badge) { badge.textContent = next; badge.className = `badge ${next}`; }
      render();
    }, "Visibility changed") }, answer.public ? "Make private" : "Make public");
    const rows = Object.entries(answer.permissions).map(([who, role]) => h("tr", {},
      h("th", { scope: "row" }, who), h("td", {}, role),
      h("td", {}, h("button", { type: "button", class: "small danger", "aria-label": `Remove ${who}`,
        onclick: (event) => act(event.currentTarget, async () => {
          await api(`repository/${name}/permissions/user/${encodeURIComponent(who)}`, { method: "DELETE" });
          render();
        }, `Removed ${who}`) }, "Remove"))));
    box.replaceChildren(
      h("h2", { id: "repo-admin-title" }, "Administration"),
      h("p", {}, answer.public ? "Anyone may pull this repository. " : "Only accounts granted a role may pull. ", visibility),
      h("h3", {}, "Permissions"),
      rows.length ? table(`Permissions on ${name}`, ["Account", "Role", ""], rows) : h("p", { class: "hint" }, "No grants on the repository itself (namespace grants still apply)."),
      grantForm(`grant-${name}`, async (who, role) => {
        await api(`repository/${name}/permissions/user/${encodeURIComponent(who)}`, { method: "PUT", body: { role } });
        render();
      }),
      policies);
  };
  render();
  return box;
}

// ---------------------------------------------------------------------------------------
// Policies (docs/policies.md): immutability and auto-prune of a repository or a namespace,
// and the storage used; the quota's limits are read-only unless one is a superuser.

function policiesSection(scope, name) {
  const base = `${scope}/${name}`;
  const key = name.replace(/[^a-z0-9]/gi, "-");
  const box = h("div", { class: "policies", "data-policies": name });
  const immutable = h("div", { id: `immutable-${key}` });
  const prune = h("div", { id: `prune-${key}` });
  const usage = h("div", { id: `usage-${key}` });
  const patternCell = (p) => p.tagPattern
    ? [h("code", {}, p.tagPattern), p.tagPatternMatches === false ? " (tags not matching)" : ""]
    : "every tag";
  const deleteButton = (kind, p, label, reload) => h("button", { type: "button", class: "small danger",
    "aria-label": `Delete ${label}`, "data-action": "delete-policy", onclick: async (event) => {
      const button = event.currentTarget;
      if (!(await confirmAction(`Delete the ${label}?`))) return;
      await act(button, async () => {
        await api(`${base}/${kind}/${p.uuid}`, { method: "DELETE" });
        reload();
      }, "Policy deleted");
    } }, "Delete");
  const patternFields = (id) => {
    const pattern = h("input", { id: `${id}-pattern`, autocomplete: "off", placeholder: "every tag", class: "mono" });
    const matches = h("select", { id: `${id}-matches` },
      h("option", { value: "true" }, "matching"), h("option", { value: "false" }, "not matching"));
    const fields = [
      h("div", {}, h("label", { for: `${id}-pattern` }, "Tag pattern (regex)"), pattern),
      h("div", {}, h("label", { for: `${id}-matches` }, "Applies to tags"), matches)];
    const read = () => pattern.value.trim()
      ? { tagPattern: pattern.value.trim(), tagPatternMatches: matches.value === "true" } : {};
    return { fields, read };
  };
  const renderImmutable = async () => {
    try {
      const answer = await api(`${base}/immutabilitypolicy/`);
      const rows = answer.policies.map((p) => h("tr", { "data-policy": p.uuid },
        h("td", {}, patternCell(p)),
        h("td", {}, deleteButton("immutabilitypolicy", p, `immutability policy ${p.tagPattern || ""}`.trim(), renderImmutable))));
      const id = `immutable-new-${key}`;
      const pattern = patternFields(id);
      immutable.replaceChildren(
        rows.length ? table(`Immutability policies of ${name}`, ["Immutable tags", ""], rows)
          : h("p", { class: "hint" }, "No immutability policy: tags may be moved and deleted."),
        h("form", { class: "inline-form", id, onsubmit: (event) => {
          event.preventDefault();
          act(event.currentTarget.querySelector("button"), async () => {
            await api(`${base}/immutabilitypolicy/`, { method: "POST", body: pattern.read() });
            renderImmutable();
          }, "Immutability policy added");
        } }, pattern.fields, h("button", { type: "submit" }, "Add immutability policy")));
    } catch (error) {
      immutable.replaceChildren(errorState(error, "the immutability policies"));
    }
  };
  const renderPrune = async () => {
    try {
      const answer = await api(`${base}/autoprunepolicy/`);
      const rule = (p) => p.method === "number_of_tags" ? `keep the ${p.value} newest` : `delete when older than ${p.value}`;
      const rows = answer.policies.map((p) => h("tr", { "data-policy": p.uuid },
        h("td", {}, rule(p)), h("td", {}, patternCell(p)),
        h("td", {}, deleteButton("autoprunepolicy", p, `auto-prune policy (${rule(p)})`, renderPrune))));
      const id = `prune-new-${key}`;
      const method = h("select", { id: `${id}-method` },
        h("option", { value: "number_of_tags" }, "keep the N newest tags"),
        h("option", { value: "creation_date" }, "delete tags older than"));
      const value = h("input", { id: `${id}-value`, required: true, autocomplete: "off", placeholder: "10 or 30d", size: 8 });
      const pattern = patternFields(id);
      prune.replaceChildren(
        rows.length ? table(`Auto-prune policies of ${name}`, ["Rule", "Tags", ""], rows)
          : h("p", { class: "hint" }, "No auto-prune policy."),
        h("form", { class: "inline-form", id, onsubmit: (event) => {
          event.preventDefault();
          act(event.currentTarget.querySelector("button"), async () => {
            const raw = value.value.trim();
            const body = { method: method.value, value: method.value === "number_of_tags" ? Number(raw) : raw, ...pattern.read() };
            await api(`${base}/autoprunepolicy/`, { method: "POST", body });
            renderPrune();
          }, "Auto-prune policy added");
        } },
          h("div", {}, h("label", { for: `${id}-method` }, "Rule"), method),
          h("div", {}, h("label", { for: `${id}-value` }, "N or age (30d)"), value),
          pattern.fields, h("button", { type: "submit" }, "Add auto-prune policy")));
    } catch (error) {
      prune.replaceChildren(errorState(error, "the auto-prune policies"));
    }
  };
  const namespace = scope === "organization" ? name : name.split("/")[0];
  const renderUsage = async () => {
    const facts = [];
    try {
      if (scope === "repository") {
        const mine = await api(`repository/${name}/usage`);
        facts.push(h("li", {}, `This repository's blobs: ${bytes(mine.used_bytes)}`));
      }
      let quotas = [];
      let used = null;
      try {
        used = await api(`organization/${namespace}/quota/usage`);
        quotas = await api(`organization/${namespace}/quota`);
      } catch (error) {
        if (scope === "organization") throw error;
      }
      const quota = quotas[0];
      if (used) {
        facts.push(h("li", { id: `usage-total-${key}` }, `Namespace ${namespace}: ${bytes(used.used_bytes)}`,
          quota ? ` of ${bytes(quota.limit_bytes)} (${Math.round((100 * used.used_bytes) / Math.max(quota.limit_bytes, 1))}%)` : " (no quota)"));
      }
      if (quota) {
        for (const limit of quota.limits) {
          const remove = me && me.super_user
            ? [" ", h("button", { type: "button", class: "small danger", "aria-label": `Remove the ${limit.type} threshold at ${limit.limit_percent}%`,
              onclick: (event) => act(event.currentTarget, async () => {
                await api(`organization/${namespace}/quota/${quota.id}/limit/${limit.id}`, { method: "DELETE" });
                renderUsage();
              }, "Threshold removed") }, "Remove")]
            : null;
          facts.push(h("li", { "data-limit": limit.id }, `${limit.type} at ${limit.limit_percent}% (${bytes(Math.floor((quota.limit_bytes * limit.limit_percent) / 100))})`, remove));
        }
      }
      const nodes = [h("ul", { class: "usage" }, facts)];
      if (me && me.super_user && used) nodes.push(quotaForm(namespace, key, quota, renderUsage));
      usage.replaceChildren();
      append(usage, nodes);
    } catch (error) {
      usage.replaceChildren(errorState(error, "the storage usage"));
    }
  };
  renderImmutable();
  renderPrune();
  renderUsage();
  return append(box, [
    h("h3", {}, "Immutable tags"), immutable,
    h("h3", {}, "Auto-prune"), prune,
    h("h3", {}, "Storage"), usage]);
}

// Superusers only (the server refuses others): the namespace's quota and its thresholds.
function quotaForm(ns, key, quota, reload) {
  const id = `quota-${key}`;
  const size = h("input", { id: `${id}-bytes`, required: true, type: "number", min: 1, autocomplete: "off",
    value: quota ? quota.limit_bytes : "" });
  const kind = h("select", { id: `${id}-type` }, h("option", { value: "Warning" }, "Warning"), h("option", { value: "Reject" }, "Reject"));
  const percent = h("input", { id: `${id}-percent`, type: "number", min: 1, max: 100, size: 4, autocomplete: "off" });
  const forms = [h("form", { class: "inline-form", onsubmit: (event) => {
    event.preventDefault();
    act(event.currentTarget.querySelector("button"), async () => {
      const body = { limit_bytes: Number(size.value) };
      if (quota) await api(`organization/${ns}/quota/${quota.id}`, { method: "PUT", body });
      else await api(`organization/${ns}/quota`, { method: "POST", body });
      reload();
    }, "Quota saved");
  } },
    h("div", {}, h("label", { for: `${id}-bytes` }, "Quota (bytes)"), size),
    h("button", { type: "submit" }, quota ? "Change quota" : "Set quota"))];
  if (quota) {
    forms.push(h("form", { class: "inline-form", onsubmit: (event) => {
      event.preventDefault();
      act(event.currentTarget.querySelector("button"), async () => {
        await api(`organization/${ns}/quota/${quota.id}/limit`, { method: "POST", body: { type: kind.value, threshold_percent: Number(percent.value) } });
        reload();
      }, "Threshold added");
    } },
      h("div", {}, h("label", { for: `${id}-type` }, "Threshold"), kind),
      h("div", {}, h("label", { for: `${id}-percent` }, "At %"), percent),
      h("button", { type: "submit" }, "Add threshold")));
  }
  return forms;
}

function grantForm(id, grant) {
  const who = h("input", { id: `${id}-who`, required: true, autocomplete: "off" });
  const role = h("select", { id: `${id}-role` }, ["read", "write", "admin"].map((r) => h("option", { value: r }, r)));
  return h("form", { class: "inline-form", onsubmit: (event) => {
    event.preventDefault();
    const button = event.currentTarget.querySelector("button");
    act(button, () => grant(who.value.trim(), role.value), `Granted ${role.value} to ${who.value.trim()}`);
  } },
    h("div", {}, h("label", { for: `${id}-who` }, "User or robot"), who),
    h("div", {}, h("label", { for: `${id}-role` }, "Role"), role),
    h("button", { type: "submit" }, "Grant"));
}

// ---------------------------------------------------------------------------------------
// Manifest page: config, layers, annotations, children, referrers, raw JSON.

async function viewManifest(name, digest, tag) {
  const id = navigation;
  loading(short(digest));
  let m;
  try {
    m = await api(`repository/${name}/manifest/${digest}`);
  } catch (error) {
    if (stale(id)) return;
    show(name, crumbs(name, digest), h("h1", {}, `${name}@${short(digest)}`), errorState(error, "this manifest"));
    return;
  }
  if (stale(id)) return;
  const title = tag ? `${name}:${tag}` : `${name}@${short(digest)}`;
  const facts = [
    ["Digest", h("span", { class: "digest" }, h("code", {}, digest), copyButton(digest, "Copy digest"))],
    ["Media type", h("code", {}, m.media_type)],
    m.artifact_type && ["Artifact type", h("code", {}, m.artifact_type)],
    m.config_media_type && ["Config type", h("code", {}, m.config_media_type)],
    m.layers_compressed_size !== null && ["Compressed size", bytes(m.layers_compressed_size)],
    m.subject && ["Subject", digestCell(name, m.subject.digest)],
  ].filter(Boolean);
  const nodes = [
    crumbs(name, digest),
    h("h1", {}, title),
    h("dl", { class: "facts panel" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])),
  ];
  if (m.is_manifest_list) {
    nodes.push(h("h2", {}, "Platforms"));
    const rows = (m.manifests || []).map((c) => h("tr", {},
      h("th", { scope: "row" }, c.platform_name || h("span", { class: "hint" }, (c.annotations || {})["vnd.docker.reference.type"] || "no platform")),
      h("td", {}, digestCell(name, c.digest)), h("td", {}, h("code", {}, c.mediaType)), h("td", { class: "num" }, bytes(c.size))));
    nodes.push(rows.length ? table("Platforms", ["Platform", "Digest", "Media type", "Manifest size"], rows) : emptyState("The index lists no manifests."));
  } else {
    nodes.push(configSection(m.config));
    nodes.push(h("h2", {}, "Layers"));
    const rows = (m.layers || []).map((l) => h("tr", {},
      h("td", { class: "num" }, String(l.index + 1)), h("td", {}, h("code", { title: l.blob_digest }, short(l.blob_digest))),
      h("td", {}, h("code", {}, l.media_type)), h("td", { class: "num" }, bytes(l.compressed_size)),
      h("td", {}, Object.entries(l.annotations || {}).map(([k, v]) => h("div", {}, h("code", {}, k), " = ", v)))));
    nodes.push(rows.length ? table("Layers", ["#", "Digest", "Media type", "Size", "Annotations"], rows) : emptyState("No layers."));
  }
  nodes.push(h("h2", {}, "Annotations"));
  const annotations = Object.entries(m.annotations || {});
  nodes.push(annotations.length
    ? table("Annotations", ["Key", "Value"], annotations.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, h("code", {}, k)), h("td", {}, v))))
    : h("p", { class: "hint" }, "None."));
  const tree = h("div", { id: "referrers" }, h("p", { class: "hint" }, "Loading referrers…"));
  nodes.push(h("h2", {}, "Referrers"), tree);
  let pretty = m.manifest_data;
  try { pretty = JSON.stringify(JSON.parse(m.manifest_data), null, 2); } catch (_) { /* as stored */ }
  nodes.push(h("details", { class: "panel" }, h("summary", {}, "Raw manifest JSON"),
    h("p", {}, copyButton(m.manifest_data, "Copy the raw manifest")), h("pre", { id: "raw-json" }, pretty)));
  show(title, nodes);
  referrersTree(name, digest, REFERRER_DEPTH).then((list) => tree.replaceChildren(list || h("p", { class: "hint" }, "Nothing refers to this manifest.")),
    (error) => tree.replaceChildren(error.status === 404 ? h("p", { class: "hint" }, "The referrers API is off.") : errorState(error, "the referrers")));
}

async function referrersTree(name, digest, depth) {
  const res = await registry(`/v2/${name}/referrers/${digest}`, "application/vnd.oci.image.index.v1+json");
  const found = (await res.json()).manifests || [];
  if (!found.length) return null;
  const items = await Promise.all(found.map(async (d) => {
    const children = depth > 1 ? await referrersTree(name, d.digest, depth - 1).catch(() => null) : null;
    const title = (d.annotations || {})["org.opencontainers.image.title"];
    return h("li", { "data-referrer": d.digest },
      h("a", { href: `#/m/${name}@${d.digest}` }, h("code", {}, d.artifactType || d.mediaType)),
      " ", h("span", { class: "mono hint" }, short(d.digest)), title ? ` · ${title}` : "", ` · ${bytes(d.size)}`,
      children);
  }));
  return h("ul", { class: "tree" }, items);
}

function configSection(config) {
  const section = [h("h2", {}, "Configuration")];
  if (!config) return [...section, h("p", { class: "hint" }, "No image configuration (an artifact, or a config too large to show).")];
  const c = config.config || {};
  const list = (xs) => (xs && xs.length ? h("code", {}, xs.join(" ")) : "—");
  const facts = [
    ["Created", config.created ? when(Date.parse(config.created) / 1000) : "—"],
    ["Platform", [config.os, config.architecture, config.variant].filter(Boolean).join("/") || "—"],
    ["Entrypoint", list(c.Entrypoint)],
    ["Command", list(c.Cmd)],
    ["Working directory", c.WorkingDir || "—"],
    ["User", c.User || "—"],
  ];
  section.push(h("dl", { class: "facts panel", id: "config-facts" }, facts.map(([k, v]) => [h("dt", {}, k), h("dd", {}, v)])));
  section.push(h("h3", {}, "Environment"));
  section.push((c.Env || []).length ? h("ul", { id: "config-env" }, c.Env.map((e) => h("li", {}, h("code", {}, e)))) : h("p", { class: "hint" }, "None."));
  section.push(h("h3", {}, "Labels"));
  const labels = Object.entries(c.Labels || {});
  section.push(labels.length
    ? table("Labels", ["Label", "Value"], labels.map(([k, v]) => h("tr", {}, h("th", { scope: "row" }, h("code", {}, k)), h("td", {}, v))))
    : h("p", { class: "hint" }, "None."));
  section.push(h("h3", {}, "History"));
  const history = config.history || [];
  section.push(history.length
    ? table("History", ["Created", "Step", "Layer"], history.map((step) => h("tr", {},
      h("td", {}, step.created ? when(Date.parse(step.created) / 1000) : "—"),
      h("td", {}, h("code", {}, step.created_by || step.comment || "")),
      h("td", {}, step.empty_layer ? "no layer" : "layer"))))
    : h("p", { class: "hint" }, "None recorded."));
  return section;
}

// ---------------------------------------------------------------------------------------
// Administration: organizations, members, robots.

async function viewAdmin() {
  if (!signedIn()) {
    show("Administration", h("h1", {}, "Administration"), errorState(new HttpError(401), "the administration"));
    return;
  }
  const nodes = [h("h1", {}, "Administration")];
  if (me.super_user) nodes.push(orgsSection(), usersSection());
  const namespaces = administered();
  if (!namespaces.length && !me.super_user) {
    nodes.push(emptyState("You administer no namespace."));
  }
  for (const ns of namespaces) nodes.push(namespaceSection(ns));
  show("Administration", nodes);
}

function orgsSection() {
  const box = h("section", { class: "panel", id: "orgs", "aria-labelledby": "orgs-title" });
  const render = async () => {
    let answer;
    try {
      answer = await api("organizations");
    } catch (error) {
      box.replaceChildren(h("h2", { id: "orgs-title" }, "Organizations"), errorState(error, "the organizations"));
      return;
    }
    const name = h("input", { id: "org-name", required: true, autocomplete: "off" });
    const owner = h("input", { id: "org-owner", autocomplete: "off", placeholder: "optional" });
    box.replaceChildren(
      h("h2", { id: "orgs-title" }, "Organizations"),
      answer.organizations.length
        ? h("ul", { id: "org-list" }, answer.organizations.map((o) => h("li", { "data-org": o.name }, o.name)))
        : h("p", { class: "hint" }, "No organizations yet."),
      h("form", { class: "inline-form", onsubmit: (event) => {
        event.preventDefault();
        act(event.currentTarget.querySelector("button"), async () => {
          await api("organizations", { method: "POST", body: { name: name.value.trim(), owners: owner.value.trim() ? [owner.value.trim()] : [] } });
          await loadMe();
          route();
        }, `Created ${name.value.trim()}`);
      } },
        h("div", {}, h("label", { for: "org-name" }, "New organization"), name),
        h("div", {}, h("label", { for: "org-owner" }, "Owner (a user)"), owner),
        h("button", { type: "submit" }, "Create")));
  };
  render();
  return box;
}

function usersSection() {
  const box = h("section", { class: "panel", id: "users", "aria-labelledby": "users-title" });
  const render = async () => {
    let answer;
    try {
      answer = await api("users");
    } catch (error) {
      box.replaceChildren(h("h2", { id: "users-title" }, "Users"), errorState(error, "the users"));
      return;
    }
    const name = h("input", { id: "user-name", required: true, autocomplete: "off" });
    const password = h("input", { id: "user-password", type: "password", required: true, minlength: 8, autocomplete: "new-password" });
    box.replaceChildren(
      h("h2", { id: "users-title" }, "Users"),
      h("ul", { id: "user-list" }, answer.users.map((u) => h("li", { "data-user": u.name }, u.name, u.superuser ? [" ", h("span", { class: "badge" }, "superuser")] : null))),
      h("form", { class: "inline-form", onsubmit: (event) => {
        event.preventDefault();
        act(event.currentTarget.querySelector("button"), async () => {
          await api("users", { method: "POST", body: { username: name.value.trim(), password: password.value } });
          render();
        }, `Created ${name.value.trim()}`);
      } },
        h("div", {}, h("label", { for: "user-name" }, "New user"), name),
        h("div", {}, h("label", { for: "user-password" }, "Password (8+ characters)"), password),
        h("button", { type: "submit" }, "Create user")));
  };
  render();
  return box;
}

function namespaceSection(ns) {
  const box = h("section", { class: "panel", "data-namespace": ns, "aria-labelledby": `ns-${ns}` });
  const members = h("div", {});
  const robots = h("div", {});
  const secret = h("div", { "aria-live": "polite" });
  const renderMembers = async () => {
    try {
      const answer = await api(`organization/${ns}/permissions`);
      const rows = Object.entries(answer.permissions).map(([who, role]) => h("tr", {},
        h("th", { scope: "row" }, who), h("td", {}, role),
        h("td", {}, h("button", { type: "button", class: "small danger", "aria-label": `Remove ${who} from ${ns}`,
          onclick: (event) => act(event.currentTarget, async () => {
            await api(`organization/${ns}/permissions/${encodeURIComponent(who)}`, { method: "DELETE" });
            renderMembers();
          }, `Removed ${who}`) }, "Remove"))));
      members.replaceChildren(
        rows.length ? table(`Members of ${ns}`, ["Member", "Role", ""], rows) : h("p", { class: "hint" }, "No members granted yet."),
        grantForm(`member-${ns}`, async (who, role) => {
          await api(`organization/${ns}/permissions/${encodeURIComponent(who)}`, { method: "PUT", body: { role } });
          renderMembers();
        }));
    } catch (error) {
      members.replaceChildren(errorState(error, "the members"));
    }
  };
  const renderRobots = async () => {
    try {
      const answer = await api(`organization/${ns}/robots`);
      const rows = answer.robots.map((r) => h("tr", { "data-robot": r.name },
        h("th", { scope: "row" }, h("code", {}, r.name)),
        h("td", {}, h("button", { type: "button", class: "small danger", "aria-label": `Delete robot ${r.name}`,
          onclick: async (event) => {
            const button = event.currentTarget;
            if (!(await confirmAction(`Delete the robot ${r.name}? Its token stops working at once.`))) return;
            await act(button, async () => {
              await api(`organization/${ns}/robots/${r.name.split("+")[1]}`, { method: "DELETE" });
              renderRobots();
            }, `Deleted ${r.name}`);
          } }, "Delete"))));
      const short = h("input", { id: `robot-${ns}`, required: true, autocomplete: "off", pattern: "[a-z0-9._\\-]{2,64}" });
      robots.replaceChildren(
        rows.length ? table(`Robots of ${ns}`, ["Robot", ""], rows) : h("p", { class: "hint" }, "No robots yet."),
        h("form", { class: "inline-form", onsubmit: (event) => {
          event.preventDefault();
          act(event.currentTarget.querySelector("button"), async () => {
            const made = await api(`organization/${ns}/robots/${short.value.trim()}`, { method: "PUT", body: {} });
            showSecret(secret, made);
            renderRobots();
          });
        } },
          h("div", {}, h("label", { for: `robot-${ns}` }, "New robot name"), short),
          h("button", { type: "submit" }, "Create robot")));
    } catch (error) {
      robots.replaceChildren(errorState(error, "the robots"));
    }
  };
  renderMembers();
  renderRobots();
  return append(box, [
    h("h2", { id: `ns-${ns}` }, ns),
    h("h3", {}, "Members"), members,
    h("h3", {}, "Robots"), secret, robots,
    policiesSection("organization", ns)]);
}

function showSecret(box, made) {
  const done = h("button", { type: "button", id: "token-done", onclick: () => box.replaceChildren() }, "I have stored it");
  box.replaceChildren(h("div", { class: "secret", id: "robot-token", role: "region", "aria-label": "New robot token" },
    h("p", {}, h("strong", {}, `Token of ${made.name}. `), "It is shown only this once: store it now (as the password of ",
      h("code", {}, made.name), ")."),
    h("pre", { class: "mono", id: "robot-token-value" }, made.token),
    h("div", { class: "actions" }, copyButton(made.token, `Copy the token of ${made.name}`), done)));
  done.focus();
}

// ---------------------------------------------------------------------------------------
// Routing: #/ (repositories), #/r/<name>, #/m/<name>@<digest>, #/admin.

function route() {
  navigation += 1;
  const hash = decodeURIComponent(location.hash.slice(1) || "/");
  const [path, query] = hash.split("?");
  const params = new URLSearchParams(query || "");
  let nav = "repos";
  if (path.startsWith("/r/")) viewRepository(path.slice(3));
  else if (path.startsWith("/m/")) {
    const at = path.lastIndexOf("@");
    viewManifest(path.slice(3, at), path.slice(at + 1), params.get("tag"));
  } else if (path === "/admin") {
    nav = "admin";
    viewAdmin();
  } else viewRepos();
  for (const link of document.querySelectorAll("[data-nav]")) {
    if (link.dataset.nav === nav) link.setAttribute("aria-current", "page");
    else link.removeAttribute("aria-current");
  }
}

async function start() {
  setupSignIn();
  await loadMe();
  window.addEventListener("hashchange", () => {
    route();
    main().focus();
  });
  setInterval(tick, 1000);
  route();
}

document.addEventListener("DOMContentLoaded", start);
