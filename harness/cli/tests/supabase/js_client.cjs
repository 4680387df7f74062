// supabase-js against `harness emulate supabase`: auth, REST under row-level security, and
// storage under policies. Run by harness/cli/tests/supabase.rs with SUPABASE_URL and the keys
// set, after the test created the `notes` table, the function and the policies. Every check
// is an assertion; the last line printed is `ok N`.
const assert = require("node:assert/strict");
const { createClient } = require("@supabase/supabase-js");
const WebSocket = require("ws");

const URL = process.env.SUPABASE_URL;
const ANON = process.env.SUPABASE_ANON_KEY;
const SERVICE = process.env.SUPABASE_SERVICE_ROLE_KEY;
let checks = 0;
const check = (cond, what) => {
  assert.ok(cond, what);
  checks += 1;
};
// Node 20 has no global WebSocket: the realtime client is given one (it never connects).
const client = (key = ANON) =>
  createClient(URL, key, { realtime: { transport: WebSocket }, auth: { persistSession: false } });

(async () => {
  const suffix = Math.random().toString(16).slice(2, 10);
  const ada = client();
  const bob = client();
  const adaEmail = `ada-js-${suffix}@example.com`;
  const bobEmail = `bob-js-${suffix}@example.com`;

  let r = await ada.auth.signUp({ email: adaEmail, password: "ada-password-1", options: { data: { name: "Ada" } } });
  check(!r.error && r.data.session && r.data.user.email === adaEmail, `signUp: ${JSON.stringify(r.error)}`);
  const adaId = r.data.user.id;
  r = await client().auth.signUp({ email: adaEmail, password: "another-password" });
  check(r.error && r.error.code === "user_already_exists", `a taken email: ${JSON.stringify(r.error)}`);
  await bob.auth.signUp({ email: bobEmail, password: "bob-password-1" });
  await bob.auth.signOut();
  r = await bob.auth.signInWithPassword({ email: bobEmail, password: "bob-password-1" });
  check(!r.error && r.data.session.access_token, "signInWithPassword");
  r = await client().auth.signInWithPassword({ email: bobEmail, password: "wrong" });
  check(r.error && r.error.status === 400 && r.error.code === "invalid_credentials", `a wrong password: ${JSON.stringify(r.error)}`);

  r = await ada.auth.getUser();
  check(r.data.user.id === adaId, "getUser");
  r = await ada.auth.updateUser({ data: { team: "engines" } });
  check(r.data.user.user_metadata.team === "engines" && r.data.user.user_metadata.name === "Ada", "updateUser merges");
  const before = (await ada.auth.getSession()).data.session.refresh_token;
  r = await ada.auth.refreshSession();
  check(!r.error && r.data.session.refresh_token !== before, "refreshSession rotates");

  r = await ada.from("notes").insert([{ body: "ada one", score: 3 }, { body: "ada two", score: 9 }]).select();
  check(!r.error && r.data.length === 2 && r.data[0].owner === adaId, `insert: ${JSON.stringify(r.error)}`);
  await bob.from("notes").insert({ body: "bob one", score: 5 });
  r = await ada.from("notes").select("body, score").order("score", { ascending: false });
  check(JSON.stringify(r.data.map((n) => n.body)) === JSON.stringify(["ada two", "ada one"]), "order");
  r = await bob.from("notes").select("*", { count: "exact" });
  check(r.count === 1 && r.data.length === 1, `bob sees his only: ${r.count}`);
  r = await bob.from("notes").update({ body: "hacked" }).eq("body", "ada one").select();
  check(!r.error && r.data.length === 0, "bob cannot update ada's note");
  r = await bob.from("notes").insert({ body: "forged", owner: adaId });
  check(r.error && r.error.code === "42501", `a forged row: ${JSON.stringify(r.error)}`);
  r = await client().from("notes").select("*");
  check(!r.error && r.data.length === 0, "anon reads none");
  r = await client(SERVICE).from("notes").select("id", { count: "exact", head: true });
  check(r.count === 3, `service role counts all: ${r.count}`);
  r = await ada.from("notes").select("score").in("score", [3, 9]).order("score").range(1, 1);
  check(JSON.stringify(r.data) === JSON.stringify([{ score: 9 }]), `in and range: ${JSON.stringify(r.data)}`);
  r = await ada.from("notes").select("body").gte("score", 5).lte("score", 10).maybeSingle();
  check(r.data && r.data.body === "ada two", "gte, lte, maybeSingle");
  r = await ada.from("notes").select("body").or("score.lt.4,body.eq.nothing").single();
  check(r.data && r.data.body === "ada one", "or and single");
  const two = (await ada.from("notes").select("id").eq("score", 9).single()).data.id;
  await ada.from("tags").insert({ note_id: two, label: "js" });
  r = await ada.from("notes").select("body, tags(label)").order("score");
  check(JSON.stringify(r.data) === JSON.stringify([{ body: "ada one", tags: [] }, { body: "ada two", tags: [{ label: "js" }] }]), `embed: ${JSON.stringify(r.data)}`);
  r = await ada.from("tags").select("label, notes!inner(body)");
  check(r.data.length === 1 && r.data[0].notes.body === "ada two", `many-to-one: ${JSON.stringify(r.data)}`);
  r = await ada.from("notes").select("id").eq("score", 3).single();
  await ada.from("notes").upsert({ id: r.data.id, body: "ada one, edited", score: 4 });
  r = await ada.from("notes").select("body").eq("score", 4).single();
  check(r.data.body === "ada one, edited", "upsert");
  r = await ada.from("notes").delete().eq("score", 4).select();
  check(r.data.length === 1, "delete");
  r = await ada.rpc("my_note_count");
  check(r.data === 1, `rpc: ${JSON.stringify(r)}`);
  r = await ada.from("no_such_table").select("*");
  check(r.error && r.error.code === "PGRST205", "an unknown table");

  const service = client(SERVICE);
  await service.storage.createBucket("avatars-js", { public: false, fileSizeLimit: 1024 });
  const file = `${adaId}/hello.txt`;
  r = await ada.storage.from("avatars-js").upload(file, Buffer.from("hello from js"), { contentType: "text/plain" });
  check(!r.error && r.data.fullPath === `avatars-js/${file}`, `upload: ${JSON.stringify(r.error)}`);
  r = await ada.storage.from("avatars-js").download(file);
  check(!r.error && (await r.data.text()) === "hello from js", "download");
  r = await bob.storage.from("avatars-js").download(file);
  check(r.error, "bob cannot download ada's object");
  r = await ada.storage.from("avatars-js").list(adaId);
  check(!r.error && r.data.map((o) => o.name).join() === "hello.txt", `list: ${JSON.stringify(r)}`);
  r = await ada.storage.from("avatars-js").move(file, `${adaId}/moved.txt`);
  check(!r.error, "move");
  r = await ada.storage.from("avatars-js").createSignedUrl(`${adaId}/moved.txt`, 60);
  const signed = await fetch(r.data.signedUrl);
  check(signed.status === 200 && (await signed.text()) === "hello from js", "a signed URL downloads");
  r = await ada.storage.from("avatars-js").upload(`${adaId}/big.txt`, Buffer.alloc(2048), { contentType: "text/plain" });
  check(r.error && String(r.error.statusCode) === "413", `oversized: ${JSON.stringify(r.error)}`);
  r = await ada.storage.from("avatars-js").remove([`${adaId}/moved.txt`]);
  check(!r.error && r.data.length === 1, "remove");

  r = await ada.auth.signOut();
  check(!r.error, "signOut");

  // A magic link and its code, read from the local inbox (Mailpit's API).
  const otp = client();
  r = await otp.auth.signInWithOtp({ email: bobEmail, options: { emailRedirectTo: "http://127.0.0.1:3000/in" } });
  check(!r.error, `signInWithOtp: ${JSON.stringify(r.error)}`);
  const search = await (await fetch(`${URL}/inbox/api/v1/search?query=${encodeURIComponent(`to:${bobEmail}`)}`)).json();
  const mail = await (await fetch(`${URL}/inbox/api/v1/message/${search.messages[0].ID}`)).json();
  check(mail.Subject === "Your Magic Link" && mail.Text.includes("redirect_to=http%3A%2F%2F127.0.0.1%3A3000%2Fin"), mail.Text);
  const code = /enter the code: (\d{6})/.exec(mail.Text)[1];
  r = await otp.auth.verifyOtp({ email: bobEmail, token: code, type: "email" });
  check(!r.error && r.data.session && r.data.user.email === bobEmail, `verifyOtp: ${JSON.stringify(r.error)}`);
  r = await otp.auth.verifyOtp({ email: bobEmail, token: code, type: "email" });
  check(r.error && r.error.code === "otp_expired", `a spent code: ${JSON.stringify(r.error)}`);
  console.log(`ok ${checks}`);
})().catch((e) => {
  console.error(e);
  process.exit(1);
});
