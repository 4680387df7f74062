"""supabase-py against `harness emulate supabase`: auth, REST and row-level security.

Run by harness/cli/tests/supabase.rs with SUPABASE_URL, SUPABASE_ANON_KEY,
SUPABASE_PUBLISHABLE_KEY, SUPABASE_SERVICE_ROLE_KEY and SUPABASE_SECRET_KEY set, after the
test created the `notes` table and its policies. Every check is an assert; the last line
printed is `ok N` with the number of checks that held.
"""

import os
import uuid

from supabase import create_client
from supabase_auth.errors import AuthApiError, AuthWeakPasswordError
from postgrest.exceptions import APIError

URL = os.environ["SUPABASE_URL"]
ANON = os.environ["SUPABASE_ANON_KEY"]
PUBLISHABLE = os.environ["SUPABASE_PUBLISHABLE_KEY"]
SERVICE = os.environ["SUPABASE_SERVICE_ROLE_KEY"]
SECRET = os.environ["SUPABASE_SECRET_KEY"]

checks = 0


def check(cond, what):
    global checks
    assert cond, what
    checks += 1


def client(key=ANON):
    return create_client(URL, key)


suffix = uuid.uuid4().hex[:8]
ada_email, bob_email = f"ada-{suffix}@example.com", f"bob-{suffix}@example.com"

# Sign up: with confirmations off, a session comes back at once.
ada = client()
res = ada.auth.sign_up({"email": ada_email, "password": "ada-password-1", "options": {"data": {"name": "Ada"}}})
check(res.session is not None and res.user.email == ada_email, "sign-up returns a session")
check(res.user.user_metadata.get("name") == "Ada", "sign-up keeps the user metadata")
ada_id = res.user.id

# A second sign-up with the same email is refused as GoTrue refuses it.
try:
    client().auth.sign_up({"email": ada_email, "password": "another-password"})
    check(False, "a taken email is refused")
except AuthApiError as e:
    check(e.code == "user_already_exists", f"taken email: {e.code} {e}")

# A weak password.
try:
    client().auth.sign_up({"email": f"weak-{suffix}@example.com", "password": "123"})
    check(False, "a weak password is refused")
except AuthWeakPasswordError as e:
    check(e.reasons == ["length"], f"weak password: {e.reasons}")

bob = client(PUBLISHABLE)
bob.auth.sign_up({"email": bob_email, "password": "bob-password-1"})
bob.auth.sign_out()
res = bob.auth.sign_in_with_password({"email": bob_email, "password": "bob-password-1"})
check(res.user.email == bob_email and res.session.access_token, "password sign-in")
try:
    client().auth.sign_in_with_password({"email": bob_email, "password": "wrong"})
    check(False, "a wrong password is refused")
except AuthApiError as e:
    check(e.code == "invalid_credentials" and e.status == 400, f"wrong password: {e.code} {e.status}")

# get_user / update_user.
user = ada.auth.get_user().user
check(user.id == ada_id, "get_user is the signed-in user")
user = ada.auth.update_user({"data": {"team": "engines"}}).user
check(user.user_metadata == {"name": "Ada", "team": "engines"}, f"update_user merges: {user.user_metadata}")

# Refresh: a new access token and a rotated refresh token.
before = ada.auth.get_session()
after = ada.auth.refresh_session()
check(after.session.refresh_token != before.refresh_token, "the refresh token rotates")
check(ada.auth.get_user().user.id == ada_id, "the refreshed session works")

# REST as each user: inserts, reads under RLS.
ada.table("notes").insert([{"body": "ada's first", "score": 3}, {"body": "ada's second", "score": 9}]).execute()
bob.table("notes").insert({"body": "bob's only", "score": 5}).execute()
mine = ada.table("notes").select("body, score").order("score", desc=True).execute().data
check([n["body"] for n in mine] == ["ada's second", "ada's first"], f"ada reads her own notes, ordered: {mine}")
check(len(bob.table("notes").select("*").execute().data) == 1, "bob reads only his note")
check(bob.table("notes").select("*").eq("body", "ada's first").execute().data == [], "bob cannot find ada's note")
# Bob cannot change or delete Ada's rows: RLS filters them out.
changed = bob.table("notes").update({"body": "hacked"}).eq("body", "ada's first").execute().data
check(changed == [], "bob's update of ada's note changes nothing")
bob.table("notes").delete().eq("body", "ada's second").execute()
check(len(ada.table("notes").select("id").execute().data) == 2, "bob's delete of ada's note deletes nothing")
# Bob cannot insert a note as Ada: the policy's check refuses it.
try:
    bob.table("notes").insert({"body": "forged", "owner": ada_id}).execute()
    check(False, "a row for another user is refused")
except APIError as e:
    check(e.code == "42501", f"RLS refuses the forged row: {e.code} {e.message}")

# Anonymous callers see nothing of the users' notes.
check(client().table("notes").select("*").execute().data == [], "anon reads no note")
# The service role bypasses RLS.
all_notes = client(SERVICE).table("notes").select("*", count="exact").execute()
check(all_notes.count == 3 and len(all_notes.data) == 3, f"service_role sees every note: {all_notes.count}")
check(client(SECRET).table("notes").select("id", count="exact").execute().count == 3, "the secret key is service_role too")

# Filters, ranges, counts, single.
r = ada.table("notes").select("body", count="exact").gt("score", 4).execute()
check(r.count == 1 and r.data == [{"body": "ada's second"}], f"gt with count: {r.count} {r.data}")
r = ada.table("notes").select("score").in_("score", [3, 9]).order("score").range(0, 0).execute()
check(r.data == [{"score": 3}], f"in, order and range: {r.data}")
r = ada.table("notes").select("body").ilike("body", "%SECOND%").single().execute()
check(r.data == {"body": "ada's second"}, f"ilike and single: {r.data}")
r = ada.table("notes").select("body").or_("score.lt.4,body.eq.nothing").execute()
check(r.data == [{"body": "ada's first"}], f"or: {r.data}")

# Embedded resources through the foreign key, both ways, and !inner; RLS applies inside.
second = ada.table("notes").select("id").eq("score", 9).single().execute().data["id"]
ada.table("tags").insert({"note_id": second, "label": "important"}).execute()
r = ada.table("notes").select("body, tags(label)").order("score").execute()
check(r.data == [{"body": "ada's first", "tags": []}, {"body": "ada's second", "tags": [{"label": "important"}]}], f"one-to-many embed: {r.data}")
r = ada.table("tags").select("label, note:notes(body)").execute()
check(r.data == [{"label": "important", "note": {"body": "ada's second"}}], f"many-to-one embed: {r.data}")
r = ada.table("notes").select("body, tags!inner(label)").execute()
check(r.data == [{"body": "ada's second", "tags": [{"label": "important"}]}], f"!inner embed: {r.data}")
check(bob.table("tags").select("label").execute().data == [], "bob sees no tag of ada's notes")
try:
    ada.table("notes").select("body, nothing(x)").execute()
    check(False, "an embed without a relationship is an error")
except APIError as e:
    check(e.code == "PGRST200", f"no relationship: {e.code}")

# Filters, order and limits on an embedded resource apply to its rows, not the outer ones
# (unless !inner).
ada.table("tags").insert({"note_id": second, "label": "later"}).execute()
r = ada.table("notes").select("body, tags(label)").eq("tags.label", "important").order("score").execute()
check(r.data == [{"body": "ada's first", "tags": []}, {"body": "ada's second", "tags": [{"label": "important"}]}], f"a filter on the embed: {r.data}")
r = ada.table("notes").select("body, tags!inner(label)").eq("tags.label", "later").execute()
check(r.data == [{"body": "ada's second", "tags": [{"label": "later"}]}], f"a filter on an !inner embed: {r.data}")
r = ada.table("notes").select("body, tags(label)").eq("id", second).order("label", desc=True, foreign_table="tags").limit(1, foreign_table="tags").execute()
check(r.data == [{"body": "ada's second", "tags": [{"label": "later"}]}], f"order and limit on the embed: {r.data}")
r = ada.table("notes").select("body, tags(label)").eq("id", second).or_("label.eq.important,label.eq.nothing", reference_table="tags").execute()
check(r.data == [{"body": "ada's second", "tags": [{"label": "important"}]}], f"or on the embed: {r.data}")
r = ada.table("tags").select("label, note:notes(body)").eq("note.body", "nothing like it").order("label").execute()
check(r.data == [{"label": "important", "note": None}, {"label": "later", "note": None}], f"a filtered to-one embed is null: {r.data}")
try:
    ada.table("notes").select("body").eq("tags.label", "important").execute()
    check(False, "a filter on a resource not embedded is an error")
except APIError as e:
    check(e.code == "PGRST108", f"not embedded: {e.code}")

# Upsert on the primary key, and an RPC.
row = ada.table("notes").select("id").eq("score", 3).single().execute().data
ada.table("notes").upsert({"id": row["id"], "body": "ada's first, edited", "score": 4}).execute()
check(ada.table("notes").select("body").eq("id", row["id"]).single().execute().data["body"] == "ada's first, edited", "upsert updates")
check(ada.rpc("my_note_count", {}).execute().data == 2, "rpc runs as the user")

# Bad requests get PostgREST's errors.
try:
    ada.table("no_such_table").select("*").execute()
    check(False, "an unknown table is an error")
except APIError as e:
    check(e.code == "PGRST205", f"unknown table: {e.code}")
try:
    ada.table("notes").select("nope").execute()
    check(False, "an unknown column is an error")
except APIError as e:
    check(e.code == "42703", f"unknown column: {e.code}")

# Sign out: the old access token no longer reaches the user.
token = ada.auth.get_session().access_token
ada.auth.sign_out()
try:
    client().auth.get_user(token)
    check(False, "a signed-out session's token is refused")
except AuthApiError as e:
    check(e.status in (401, 403), f"signed out: {e.status}")

# Admin: list, get, delete.
admin = client(SERVICE).auth.admin
users = admin.list_users()
check({ada_email, bob_email} <= {u.email for u in users}, "admin lists the users")
check(admin.get_user_by_id(ada_id).user.email == ada_email, "admin gets a user")
created = admin.create_user({"email": f"carol-{suffix}@example.com", "password": "carol-password", "email_confirm": True})
admin.delete_user(created.user.id)
check(f"carol-{suffix}@example.com" not in {u.email for u in admin.list_users()}, "admin deletes a user")

# Storage: buckets by the service role; objects under policies on storage.objects (each
# user's own folder), bytes in the object store.
import httpx
from storage3.utils import StorageException

service = client(SERVICE)
service.storage.create_bucket("avatars", options={"public": False, "file_size_limit": 1024, "allowed_mime_types": ["text/plain", "image/png"]})
service.storage.create_bucket("public-assets", options={"public": True})
check({"avatars", "public-assets"} <= {b.name for b in service.storage.list_buckets()}, "buckets are listed")
check(service.storage.get_bucket("avatars").file_size_limit == 1024, "a bucket keeps its limit")

ada = client()
ada.auth.sign_in_with_password({"email": ada_email, "password": "ada-password-1"})
bob = client()
bob.auth.sign_in_with_password({"email": bob_email, "password": "bob-password-1"})
up = ada.storage.from_("avatars").upload(f"{ada_id}/hello.txt", b"hello ada", {"content-type": "text/plain"})
check(up.full_path == f"avatars/{ada_id}/hello.txt", f"upload: {up}")
check(ada.storage.from_("avatars").download(f"{ada_id}/hello.txt") == b"hello ada", "ada downloads her object")


def refused(fn, what, statuses=("400", "403", "404", 400, 403, 404)):
    try:
        fn()
        check(False, what)
    except StorageException as e:
        status = e.args[0].get("statusCode") if e.args and isinstance(e.args[0], dict) else getattr(e, "status", None)
        check(status in statuses, f"{what}: {e!r}")


refused(lambda: bob.storage.from_("avatars").download(f"{ada_id}/hello.txt"), "bob cannot download ada's object")
refused(lambda: bob.storage.from_("avatars").upload(f"{ada_id}/evil.txt", b"x", {"content-type": "text/plain"}), "bob cannot write in ada's folder")
check([o["name"] for o in ada.storage.from_("avatars").list(ada_id)] == ["hello.txt"], "ada lists her folder")
check(bob.storage.from_("avatars").list(ada_id) == [], "bob lists nothing of ada's")
refused(lambda: ada.storage.from_("avatars").upload(f"{ada_id}/big.txt", b"x" * 2048, {"content-type": "text/plain"}), "an oversized upload is refused", ("413", 413))
refused(lambda: ada.storage.from_("avatars").upload(f"{ada_id}/doc.pdf", b"%PDF", {"content-type": "application/pdf"}), "a refused MIME type", ("415", 415))
refused(lambda: ada.storage.from_("avatars").upload(f"{ada_id}/hello.txt", b"again", {"content-type": "text/plain"}), "an existing object without upsert", ("409", 409))
ada.storage.from_("avatars").upload(f"{ada_id}/hello.txt", b"hello again", {"content-type": "text/plain", "upsert": "true"})
ada.storage.from_("avatars").move(f"{ada_id}/hello.txt", f"{ada_id}/renamed.txt")
check(ada.storage.from_("avatars").download(f"{ada_id}/renamed.txt") == b"hello again", "move, then download")
ada.storage.from_("avatars").copy(f"{ada_id}/renamed.txt", f"{ada_id}/copy.txt")
check(sorted(o["name"] for o in ada.storage.from_("avatars").list(ada_id)) == ["copy.txt", "renamed.txt"], "copy")
signed = ada.storage.from_("avatars").create_signed_url(f"{ada_id}/renamed.txt", 60)
check(httpx.get(signed["signedURL"]).content == b"hello again", "a signed URL downloads without a session")
check(httpx.get(signed["signedURL"].replace("token=", "token=x")).status_code == 400, "a forged signed URL is refused")
up_url = ada.storage.from_("avatars").create_signed_upload_url(f"{ada_id}/via-signed.txt")
ada.storage.from_("avatars").upload_to_signed_url(f"{ada_id}/via-signed.txt", up_url["token"], b"signed upload", {"content-type": "text/plain"})
check(ada.storage.from_("avatars").download(f"{ada_id}/via-signed.txt") == b"signed upload", "a signed upload")
removed = ada.storage.from_("avatars").remove([f"{ada_id}/copy.txt", f"{ada_id}/via-signed.txt"])
check(len(removed) == 2, f"remove: {removed}")
check([o["name"] for o in ada.storage.from_("avatars").list(ada_id)] == ["renamed.txt"], "removed objects are gone")
service.storage.from_("public-assets").upload("logo.txt", b"public bytes", {"content-type": "text/plain"})
public_url = service.storage.from_("public-assets").get_public_url("logo.txt")
check(httpx.get(public_url).content == b"public bytes", "a public bucket's object downloads by its public URL")
refused(lambda: ada.storage.from_("no such bucket").list(), "an invalid bucket name")

print(f"ok {checks}")
