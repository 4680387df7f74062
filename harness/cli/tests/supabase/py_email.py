"""supabase-py against `harness emulate supabase --confirm-email`: the email flows.

Sign-up confirmation (by code and by the mailed link), magic links and one-time codes,
password recovery and resend, each mail read from the emulator's local inbox through its
Mailpit API. Run by harness/cli/tests/supabase.rs with SUPABASE_URL and SUPABASE_ANON_KEY
set. Every check is an assert; the last line printed is `ok N`.
"""

import json
import os
import re
import urllib.error
import urllib.parse
import urllib.request
import uuid

from supabase import create_client
from supabase_auth.errors import AuthApiError

URL = os.environ["SUPABASE_URL"]
ANON = os.environ["SUPABASE_ANON_KEY"]

checks = 0


def check(cond, what):
    global checks
    assert cond, what
    checks += 1


def get(path):
    with urllib.request.urlopen(URL + path) as r:
        return json.load(r)


def latest_mail(to):
    """The newest mail to an address: (subject, code, link)."""
    found = get("/inbox/api/v1/search?" + urllib.parse.urlencode({"query": f"to:{to}"}))
    check(found["messages"], f"a mail reached {to}")
    mail = get("/inbox/api/v1/message/" + found["messages"][0]["ID"])
    code = re.search(r"enter the code: (\d{6})", mail["Text"]).group(1)
    link = re.search(r"(http://\S+/auth/v1/verify\?\S+)", mail["Text"]).group(1)
    return mail["Subject"], code, link


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def open_link(link):
    """Opens a mailed link as a browser would, without following the redirect."""
    opener = urllib.request.build_opener(NoRedirect)
    try:
        opener.open(link)
    except urllib.error.HTTPError as e:
        return e.code, e.headers["Location"]
    raise AssertionError("the link did not redirect")


suffix = uuid.uuid4().hex[:8]
ada, bob = f"ada-{suffix}@example.com", f"bob-{suffix}@example.com"
settings = get("/auth/v1/settings?apikey=" + ANON)
check(settings["mailer_autoconfirm"] is False, "confirmations are on")

# Sign-up with confirmations on: a user and a mail, no session; a password sign-in waits.
c = create_client(URL, ANON)
res = c.auth.sign_up({"email": ada, "password": "ada-password-1"})
check(res.session is None, "no session before the address is confirmed")
check(res.user.email == ada and res.user.email_confirmed_at is None, "an unconfirmed user")
try:
    c.auth.sign_in_with_password({"email": ada, "password": "ada-password-1"})
    check(False, "an unconfirmed user cannot sign in with a password")
except AuthApiError as e:
    check(e.code == "email_not_confirmed", f"email_not_confirmed: {e.code}")
subject, code, _ = latest_mail(ada)
check(subject == "Confirm Your Signup", subject)

# A wrong code is refused; resend replaces the code, so the first one no longer works.
try:
    c.auth.verify_otp({"email": ada, "token": "000000" if code != "000000" else "111111", "type": "signup"})
    check(False, "a wrong code is refused")
except AuthApiError as e:
    check(e.code == "otp_expired", e.code)
c.auth.resend({"type": "signup", "email": ada})
_, code2, _ = latest_mail(ada)
if code2 != code:
    try:
        c.auth.verify_otp({"email": ada, "token": code, "type": "signup"})
        check(False, "a replaced code is refused")
    except AuthApiError as e:
        check(e.code == "otp_expired", e.code)
res = c.auth.verify_otp({"email": ada, "token": code2, "type": "signup"})
check(res.session is not None and res.user.email_confirmed_at, "the code confirms and signs in")
check(c.auth.get_user().user.email == ada, "the session is the user's")
try:
    c.auth.verify_otp({"email": ada, "token": code2, "type": "signup"})
    check(False, "a code works once")
except AuthApiError as e:
    check(e.code == "otp_expired", e.code)
p = create_client(URL, ANON)
res = p.auth.sign_in_with_password({"email": ada, "password": "ada-password-1"})
check(res.session is not None, "once confirmed, the password signs in")

# The project signs user tokens with an asymmetric key: ES256 with its kid, the public half
# in the JWKS, which supabase-py's get_claims fetches and verifies the signature with.
header = json.loads(__import__("base64").urlsafe_b64decode(res.session.access_token.split(".")[0] + "=="))
jwks = get("/auth/v1/.well-known/jwks.json?apikey=" + ANON)
check(header["alg"] == "ES256" and header["kid"] == jwks["keys"][0]["kid"], f"{header} {jwks}")
claims = p.auth.get_claims()
check(claims["claims"]["sub"] == res.user.id and claims["headers"]["alg"] == "ES256", f"get_claims: {claims}")
tampered = res.session.access_token[:-4] + ("AAAA" if not res.session.access_token.endswith("AAAA") else "BBBB")
try:
    p.auth.get_claims(tampered)
    check(False, "a token with a changed signature does not verify")
except Exception as e:
    check("signature" in str(e).lower() or "invalid" in str(e).lower(), str(e))
req = urllib.request.Request(URL + "/rest/v1/nothing_here", headers={"apikey": ANON, "Authorization": "Bearer " + res.session.access_token})
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    check(e.code == 404, f"REST takes the ES256 token (and finds no table): {e.code}")
req = urllib.request.Request(URL + "/rest/v1/nothing_here", headers={"apikey": ANON, "Authorization": "Bearer " + tampered})
try:
    urllib.request.urlopen(req)
except urllib.error.HTTPError as e:
    check(e.code == 401, f"REST refuses a tampered ES256 token: {e.code}")

# Confirming by the mailed link: a redirect with the session in the fragment.
b = create_client(URL, ANON)
b.auth.sign_up({"email": bob, "password": "bob-password-1", "options": {"email_redirect_to": "http://127.0.0.1:3000/welcome"}})
_, _, link = latest_mail(bob)
status, location = open_link(link)
check(status == 303, f"303: {status}")
target, fragment = location.split("#", 1)
check(target == "http://127.0.0.1:3000/welcome", target)
params = urllib.parse.parse_qs(fragment)
check(params["type"] == ["signup"] and params["token_type"] == ["bearer"], fragment)
check(b.auth.get_user(params["access_token"][0]).user.email == bob, "the fragment's token is bob's")
status, location = open_link(link)
check("error_code=otp_expired" in location, f"a spent link redirects with the error: {location}")

# A magic link for a confirmed user, signed in with its code.
m = create_client(URL, ANON)
m.auth.sign_in_with_otp({"email": ada})
subject, code, _ = latest_mail(ada)
check(subject == "Your Magic Link", subject)
res = m.auth.verify_otp({"email": ada, "token": code, "type": "email"})
check(res.session is not None and res.user.email == ada, "the code signs ada in")
payload = res.session.access_token.split(".")[1]
claims = json.loads(__import__("base64").urlsafe_b64decode(payload + "=" * (-len(payload) % 4)))
check(claims["amr"][0]["method"] == "otp", f"signed in by a one-time code: {claims['amr']}")

# A new address through sign_in_with_otp, unless should_create_user is false.
carol = f"carol-{suffix}@example.com"
try:
    m.auth.sign_in_with_otp({"email": carol, "options": {"should_create_user": False}})
    check(False, "no user is made when should_create_user is false")
except AuthApiError as e:
    check(e.code == "otp_disabled", e.code)
m.auth.sign_in_with_otp({"email": carol, "options": {"data": {"name": "Carol"}}})
subject, code, link = latest_mail(carol)
check(subject == "Confirm Your Signup", subject)
token_hash = urllib.parse.parse_qs(urllib.parse.urlparse(link).query)["token"][0]
res = m.auth.verify_otp({"token_hash": token_hash, "type": "email"})
check(res.user.email == carol and res.user.user_metadata.get("name") == "Carol", "carol signed in by the token hash")

# Recovery: sign in by the mail, then set a new password.
r = create_client(URL, ANON)
r.auth.reset_password_for_email(ada, {"redirect_to": "http://127.0.0.1:3000/reset"})
subject, code, link = latest_mail(ada)
check(subject == "Reset Your Password", subject)
check("redirect_to=http%3A%2F%2F127.0.0.1%3A3000%2Freset" in link, link)
res = r.auth.verify_otp({"email": ada, "token": code, "type": "recovery"})
check(res.session is not None, "the recovery code signs in")
r.auth.update_user({"password": "ada-new-password"})
res = create_client(URL, ANON).auth.sign_in_with_password({"email": ada, "password": "ada-new-password"})
check(res.session is not None, "the new password signs in")
r.auth.reset_password_for_email(f"nobody-{suffix}@example.com")
found = get("/inbox/api/v1/search?" + urllib.parse.urlencode({"query": f"to:nobody-{suffix}@example.com"}))
check(found["messages"] == [], "no mail for an unknown address, and the same answer")

# Bad requests get GoTrue's errors.
try:
    create_client(URL, ANON).auth.sign_in_with_otp({"email": "not-an-address"})
    check(False, "an invalid address is refused")
except AuthApiError as e:
    check(e.status == 400 and e.code == "validation_failed", f"{e.status} {e.code}")
try:
    create_client(URL, ANON).auth.verify_otp({"email": ada, "token": "", "type": "email"})
    check(False, "a verify without a code is refused")
except AuthApiError as e:
    check(e.status == 400 and e.code == "validation_failed", f"{e.status} {e.code}")

print(f"ok {checks}")
