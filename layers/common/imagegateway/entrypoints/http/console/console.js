// The console's behaviour: the gateway's own JSON API, called on this page's origin, and
// nothing else. Text from the API is only ever set as text (textContent, values), never as HTML.
"use strict";
(() => {
  const REFRESH_MS = 2000; // while a shown job is PENDING, the list is read again this often
  const PAGE = 20;
  const KEY = "imagegateway.apiKey"; // sessionStorage: this tab only
  const CALLER = "imagegateway.localCaller";
  const store = window.sessionStorage;
  const byId = (id) => document.getElementById(id);
  const app = byId("app");
  const kinds = JSON.parse(app.dataset.kinds); // kind -> the fields it requires beyond a prompt
  let mode = "unknown"; // "local" (the local stack), "keyed" (API-Key) or "iam" (SigV4)
  let cursor = null; // the next page of older jobs
  let timer = null;
  // Bumped when the caller changes: an answer asked for an earlier caller is dropped, not shown
  // (it may arrive after the new caller's own).
  let generation = 0;
  const shown = new Map(); // job id -> {status, item}

  // ------------------------------------------------------------------ calls

  function headers(extra) {
    const sent = Object.assign({}, extra);
    const key = store.getItem(KEY);
    if (key) sent["API-Key"] = key;
    const caller = store.getItem(CALLER);
    if (mode === "local" && caller) sent["X-Local-Caller"] = caller;
    return sent;
  }

  // One call of the API (a path relative to this page): {status, data}; data is the JSON
  // answer, or {error} for a body that is not JSON.
  async function api(method, path, body, extra) {
    const init = { method, headers: headers(extra), cache: "no-store", credentials: "omit" };
    if (body !== undefined) {
      init.body = body;
      init.headers["Content-Type"] = "application/json";
    }
    const response = await fetch(path, init);
    const text = await response.text();
    let data = null;
    try {
      data = text ? JSON.parse(text) : null;
    } catch (error) {
      data = { error: text.slice(0, 300) };
    }
    return { status: response.status, data };
  }

  function say(text) {
    const message = byId("message");
    message.textContent = text || "";
    message.hidden = !text;
  }

  function problem(answer) {
    const data = answer.data || {};
    return `${answer.status}: ${data.error || data.message || "the gateway refused the call"}`;
  }

  // ------------------------------------------------------------------ who calls

  async function start() {
    wire();
    let probe;
    try {
      // Without credentials: only the local stack answers (deployed, both APIs refuse).
      probe = await fetch("v1/usage", { cache: "no-store", credentials: "omit" });
    } catch (error) {
      byId("who").textContent = "The gateway cannot be reached.";
      return;
    }
    if (probe.ok) {
      mode = "local";
      byId("local-panel").hidden = false;
      byId("local-caller").value = store.getItem(CALLER) || "";
      return enter();
    }
    if (probe.status === 401) {
      mode = "keyed";
      if (store.getItem(KEY) && (await keyWorks())) return enter();
      return askForKey();
    }
    mode = "iam";
    byId("who").textContent = "IAM API: calls need a SigV4 signature.";
    byId("iam-panel").hidden = false;
  }

  async function keyWorks() {
    const answer = await api("GET", "v1/usage");
    if (answer.status === 200) return true;
    store.removeItem(KEY);
    say(answer.status === 401 || answer.status === 403 ? "That key was refused." : problem(answer));
    return false;
  }

  function askForKey() {
    byId("who").textContent = "Keyed API: your key is needed.";
    byId("key-panel").hidden = false;
    byId("api-key").focus();
  }

  function describeCaller() {
    if (mode === "local") {
      const caller = store.getItem(CALLER);
      return caller
        ? `Local stack, as the IAM user “${caller}” (X-Local-Caller).`
        : "Local stack, as the local account.";
    }
    const key = store.getItem(KEY) || "";
    return `Keyed API, with the key ending “…${key.slice(-4)}”.`;
  }

  async function enter() {
    say("");
    byId("key-panel").hidden = true;
    byId("forget").hidden = mode !== "keyed";
    byId("who").textContent = describeCaller();
    app.hidden = false;
    await Promise.all([loadUsage(), loadJobs()]);
  }

  // ------------------------------------------------------------------ usage and secret

  async function loadUsage() {
    const askedIn = generation;
    const answer = await api("GET", "v1/usage");
    if (askedIn !== generation) return;
    const usage = byId("usage");
    if (answer.status !== 200) {
      usage.textContent = `Unavailable (${problem(answer)}).`;
      return;
    }
    const day = answer.data;
    const asked = `${day.images} image${day.images === 1 ? "" : "s"} asked of the upstream on ${day.day} (UTC)`;
    usage.textContent =
      day.budget === null
        ? `${asked}; no daily budget.`
        : `${asked} of a budget of ${day.budget}: ${day.remaining} left until ${new Date(day.resets_at).toLocaleString()}.`;
  }

  async function toggleSecret() {
    const button = byId("secret-toggle");
    const box = byId("secret-box");
    const field = byId("secret");
    if (!box.hidden) {
      field.value = "";
      box.hidden = true;
      button.textContent = "Show the secret";
      button.setAttribute("aria-expanded", "false");
      return;
    }
    const answer = await api("GET", "v1/webhooks/secret");
    if (answer.status !== 200) return say(problem(answer));
    field.value = answer.data.secret;
    box.hidden = false;
    button.textContent = "Hide the secret";
    button.setAttribute("aria-expanded", "true");
    field.focus();
    field.select();
  }

  // ------------------------------------------------------------------ the submit form

  function fillKinds() {
    const select = byId("kind");
    for (const kind of Object.keys(kinds)) {
      const option = document.createElement("option");
      option.value = option.textContent = kind;
      select.append(option);
    }
    showKindFields();
  }

  // The fields the chosen kind requires beyond a model and a prompt: an image URL each; any
  // other (a ControlNet's lists, say) is written in the raw JSON.
  function showKindFields() {
    const box = byId("kind-fields");
    const kept = {};
    for (const input of box.querySelectorAll("input")) kept[input.name] = input.value;
    box.replaceChildren();
    for (const name of kinds[byId("kind").value]) {
      const label = document.createElement("label");
      label.htmlFor = `field-${name}`;
      if (name.endsWith("_image")) {
        label.textContent = `${name} (an image URL)`;
        const input = document.createElement("input");
        Object.assign(input, { id: `field-${name}`, name, type: "url", required: true });
        input.value = kept[name] || "";
        input.spellcheck = false;
        box.append(label, input);
      } else {
        const note = document.createElement("p");
        note.className = "muted";
        note.textContent = `This kind also needs “${name}”: write it in the raw JSON.`;
        box.append(note);
      }
    }
    if (byId("raw-mode").checked) byId("raw").value = JSON.stringify(bodyFromFields(), null, 2);
  }

  function bodyFromFields() {
    const body = { model_id: byId("model_id").value.trim(), prompt: byId("prompt").value };
    const negative = byId("negative_prompt").value;
    if (negative.trim()) body.negative_prompt = negative;
    for (const input of byId("kind-fields").querySelectorAll("input")) body[input.name] = input.value.trim();
    for (const name of ["width", "height", "samples", "num_inference_steps", "seed"]) {
      const value = byId(name).value.trim();
      if (value !== "") body[name] = parseInt(value, 10);
    }
    const guidance = byId("guidance_scale").value.trim();
    if (guidance !== "") body.guidance_scale = parseFloat(guidance);
    return body;
  }

  function toggleRaw() {
    const raw = byId("raw-mode").checked;
    byId("raw-box").hidden = !raw;
    byId("fields").hidden = raw;
    if (raw) {
      byId("raw").value = JSON.stringify(bodyFromFields(), null, 2);
      byId("raw").focus();
    }
  }

  function showAnswer(answer, kind) {
    const result = byId("submit-result");
    result.replaceChildren();
    delete result.dataset.job;
    const data = answer.data || {};
    const line = document.createElement("p");
    if (answer.status === 200 || answer.status === 202) {
      line.textContent = `Accepted: ${kind} job ${data.id} (${data.status}).`;
      result.dataset.job = data.id;
      result.append(line);
      for (const warning of data.warnings || []) {
        const note = document.createElement("p");
        note.textContent = `Note: ${warning}`;
        result.append(note);
      }
      return;
    }
    line.textContent = `Refused, ${problem(answer)}`;
    result.append(line);
    if ((data.details || []).length) {
      const list = document.createElement("ul");
      for (const detail of data.details) {
        const item = document.createElement("li");
        item.textContent = `${detail.field}: ${detail.message}`;
        list.append(item);
      }
      result.append(list);
    }
  }

  async function submit(event) {
    event.preventDefault();
    const kind = byId("kind").value;
    const raw = byId("raw-mode").checked;
    const text = raw ? byId("raw").value : JSON.stringify(bodyFromFields());
    const button = byId("submit-button");
    button.disabled = true;
    const result = byId("submit-result");
    delete result.dataset.job;
    result.textContent = "Submitting…";
    try {
      const answer = await api("POST", `sd/${kind}/v1`, text);
      showAnswer(answer, kind);
      if (answer.status === 200 || answer.status === 202) await Promise.all([loadJobs(), loadUsage()]);
    } catch (error) {
      say(`The submit failed: ${error}`);
    } finally {
      button.disabled = false;
    }
  }

  // ------------------------------------------------------------------ the jobs

  function seconds(value) {
    return value === null || value === undefined ? null : `${value.toFixed(2)} s`;
  }

  function jobItem(job) {
    const item = document.createElement("li");
    item.className = "job";
    item.dataset.job = job.id;
    item.dataset.status = job.status;
    item.dataset.kind = job.kind || "";
    const request = job.request || {};
    const prompt = typeof request.prompt === "string" ? request.prompt : "";

    const thumbs = document.createElement("div");
    thumbs.className = "thumbs";
    (job.images || []).forEach((image, index) => {
      const link = document.createElement("a");
      link.href = image.url;
      link.target = "_blank";
      link.rel = "noopener noreferrer";
      const img = document.createElement("img");
      img.src = image.url;
      img.alt = `Image ${index + 1} of the ${job.kind} job: ${prompt || job.id}`;
      img.width = img.height = 160;
      link.append(img);
      thumbs.append(link);
    });
    if (!thumbs.childElementCount) {
      const none = document.createElement("div");
      none.className = "none";
      none.textContent = job.status === "PENDING" ? "generating…" : "no image";
      thumbs.append(none);
    }

    const info = document.createElement("div");
    const title = document.createElement("h3");
    const badge = document.createElement("span");
    badge.className = `badge ${job.status}`;
    badge.textContent = job.status;
    const what = document.createElement("span");
    what.textContent = job.kind || "";
    const when = document.createElement("time");
    const created = job.timings && job.timings.created_at;
    if (created) {
      when.dateTime = created;
      when.textContent = new Date(created).toLocaleString();
    }
    title.append(badge, what, when);
    info.append(title);

    const text = document.createElement("p");
    text.className = "prompt";
    text.textContent = prompt ? `“${prompt}”` : "";
    info.append(text);

    const facts = [];
    const timings = job.timings || {};
    for (const [name, label] of [
      ["queued_seconds", "queued"],
      ["upstream_seconds", "upstream"],
      ["copy_seconds", "copy"],
      ["total_seconds", "total"],
    ]) {
      const value = seconds(timings[name]);
      if (value) facts.push(`${label} ${value}`);
    }
    if (job.tokens) {
      facts.push(
        `tokens: prompt ${job.tokens.prompt}, negative ${job.tokens.negative_prompt} (the model reads ${job.tokens.limit})`,
      );
    }
    if (job.cached_from) facts.push(`from the cache (job ${job.cached_from})`);
    if (job.status === "PENDING") {
      // The gateway's estimate, learned from its recent jobs of the same shape (or none yet).
      facts.push(
        job.estimate === "learned" && job.estimated_done_at
          ? `expected done about ${new Date(job.estimated_done_at).toLocaleTimeString()}`
          : "no estimate yet",
      );
    }
    const line = document.createElement("p");
    line.className = "facts";
    line.textContent = facts.join(" · ");
    info.append(line);

    if (job.status === "FAILURE") {
      const error = document.createElement("p");
      error.className = "error";
      error.textContent = `${job.error_code || "FAILURE"}: ${job.error || ""}`;
      info.append(error);
    }
    if (job.status === "PENDING") {
      const cancel = document.createElement("button");
      cancel.type = "button";
      cancel.className = "quiet";
      cancel.textContent = "Cancel";
      cancel.setAttribute("aria-label", `Cancel the ${job.kind} job ${job.id}`);
      cancel.addEventListener("click", () => cancelJob(job, cancel));
      info.append(cancel);
    }

    const details = document.createElement("details");
    const summary = document.createElement("summary");
    summary.textContent = "Request and answer (JSON)";
    const answer = Object.assign({}, job);
    delete answer.request;
    const sent = document.createElement("pre");
    sent.setAttribute("aria-label", "The request");
    sent.textContent = JSON.stringify(request, null, 2);
    const got = document.createElement("pre");
    got.setAttribute("aria-label", "The answer");
    got.textContent = JSON.stringify(answer, null, 2);
    details.append(summary, sent, got);
    info.append(details);

    item.append(thumbs, info);
    return item;
  }

  // Show `jobs` (newest first): a job already shown is replaced only when its status (or its
  // estimate) changed, so its images are not fetched again; new jobs come in at their place.
  function show(jobs, append) {
    const list = byId("jobs");
    let before = append ? null : list.firstElementChild;
    for (const job of jobs) {
      const known = shown.get(job.id);
      const state = `${job.status} ${job.estimated_done_at || ""}`;
      if (known && known.state === state) {
        before = known.item.nextElementSibling;
        continue;
      }
      const item = jobItem(job);
      if (known) known.item.replaceWith(item);
      else list.insertBefore(item, before);
      shown.set(job.id, { status: job.status, state, item });
      before = item.nextElementSibling;
    }
    const pending = [...shown.values()].some((job) => job.status === "PENDING");
    byId("jobs-state").textContent = shown.size
      ? pending
        ? "Following the pending jobs…"
        : ""
      : "No jobs yet: submit one.";
    schedule(pending);
  }

  function schedule(pending) {
    if (pending && timer === null) {
      timer = window.setTimeout(async () => {
        timer = null;
        await loadJobs();
      }, REFRESH_MS);
    }
  }

  async function loadJobs() {
    const limit = Math.min(100, Math.max(PAGE, shown.size));
    const askedIn = generation;
    const answer = await api("GET", `v1/jobs?limit=${limit}`);
    if (askedIn !== generation) return;
    if (answer.status !== 200) return say(problem(answer));
    const before = new Map([...shown].map(([id, job]) => [id, job.status]));
    show(answer.data.jobs, false);
    if (cursor === null || shown.size <= limit) {
      cursor = answer.data.next_cursor || null;
      byId("more").hidden = !cursor;
    }
    const ended = answer.data.jobs.some((job) => before.get(job.id) === "PENDING" && job.status !== "PENDING");
    if (ended) await loadUsage();
  }

  async function loadOlder() {
    if (!cursor) return;
    const askedIn = generation;
    const answer = await api("GET", `v1/jobs?limit=${PAGE}&cursor=${encodeURIComponent(cursor)}`);
    if (askedIn !== generation) return;
    if (answer.status !== 200) return say(problem(answer));
    show(answer.data.jobs, true);
    cursor = answer.data.next_cursor || null;
    byId("more").hidden = !cursor;
  }

  async function cancelJob(job, button) {
    button.disabled = true;
    const answer = await api("POST", `v1/jobs/${encodeURIComponent(job.id)}/cancel`);
    if (answer.status === 200) {
      show([answer.data], false);
      await loadUsage();
      return;
    }
    button.disabled = false;
    say(answer.status === 409 ? "The job had already ended." : problem(answer));
    await loadJobs();
  }

  // ------------------------------------------------------------------ wiring

  function restart() {
    generation += 1;
    if (timer !== null) window.clearTimeout(timer);
    timer = null;
    shown.clear();
    cursor = null;
    byId("jobs").replaceChildren();
    return enter();
  }

  function wire() {
    byId("key-form").addEventListener("submit", async (event) => {
      event.preventDefault();
      store.setItem(KEY, byId("api-key").value.trim());
      byId("api-key").value = "";
      if (await keyWorks()) return enter();
      askForKey();
    });
    byId("forget").addEventListener("click", () => {
      store.removeItem(KEY);
      window.location.reload();
    });
    byId("caller-form").addEventListener("submit", (event) => {
      event.preventDefault();
      const caller = byId("local-caller").value.trim();
      if (caller) store.setItem(CALLER, caller);
      else store.removeItem(CALLER);
      restart();
    });
    byId("kind").addEventListener("change", showKindFields);
    byId("raw-mode").addEventListener("change", toggleRaw);
    byId("submit-form").addEventListener("submit", submit);
    byId("secret-toggle").addEventListener("click", toggleSecret);
    byId("refresh").addEventListener("click", () => Promise.all([loadJobs(), loadUsage()]));
    byId("more").addEventListener("click", loadOlder);
    fillKinds();
  }

  start();
})();
