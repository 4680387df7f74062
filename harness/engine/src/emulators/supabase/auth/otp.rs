//! Auth's email flows, as GoTrue runs them: the confirmation of a sign-up (when the project
//! asks for it), magic links and one-time codes (`/otp`), password recovery (`/recover`),
//! `/resend`, and `/verify` (a code or a token hash in a POST, or the mailed link's GET,
//! which redirects with the session in the URL's fragment). Each mail carries a 6-digit
//! code and a link whose token is the code's hash (SHA-224 of the address and the code, as
//! GoTrue stores it), and goes to the emulator's local inbox. Tokens live in
//! `auth.one_time_tokens`, one per user and kind; a new one replaces the last, and verifying
//! spends it.

use axum::http::StatusCode;
use rand::Rng;
use serde_json::{Value, json};
use sha2::{Digest, Sha224};

use super::{Auth, Reply, body_json, checked_email, email_in, error, internal};

/// What a mail is for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Purpose {
    /// Confirm a new user's address (`type=signup`).
    Signup,
    /// Sign a confirmed user in (`type=magiclink`).
    MagicLink,
    /// Sign in to set a new password (`type=recovery`).
    Recovery,
}

impl Purpose {
    /// The `auth.one_time_tokens.token_type` it is kept as (GoTrue keeps magic links as
    /// recovery tokens).
    fn token_type(self) -> &'static str {
        match self {
            Purpose::Signup => "confirmation_token",
            Purpose::MagicLink | Purpose::Recovery => "recovery_token",
        }
    }
    fn verify_type(self) -> &'static str {
        match self {
            Purpose::Signup => "signup",
            Purpose::MagicLink => "magiclink",
            Purpose::Recovery => "recovery",
        }
    }
    fn subject(self) -> &'static str {
        match self {
            Purpose::Signup => "Confirm Your Signup",
            Purpose::MagicLink => "Your Magic Link",
            Purpose::Recovery => "Reset Your Password",
        }
    }
    fn sent_column(self) -> &'static str {
        match self {
            Purpose::Signup => "confirmation_sent_at",
            Purpose::MagicLink | Purpose::Recovery => "recovery_sent_at",
        }
    }
}

/// The token types a `/verify` of `type` may spend; `None` for a type not emulated.
fn spends(kind: &str) -> Option<&'static [&'static str]> {
    Some(match kind {
        "signup" | "invite" => &["confirmation_token"],
        "recovery" => &["recovery_token"],
        "magiclink" | "email" => &["confirmation_token", "recovery_token"],
        _ => return None,
    })
}

/// GoTrue's token hash: hex SHA-224 of the address and the code.
pub fn token_hash(email: &str, code: &str) -> String {
    let d = Sha224::digest(format!("{email}{code}").as_bytes());
    d.iter().map(|b| format!("{b:02x}")).collect()
}

fn invalid() -> Reply {
    error(403, "otp_expired", "Token has expired or is invalid")
}

impl Auth {
    /// Where a mailed link sends the browser: `redirect_to` when it is on this machine,
    /// else the site URL (GoTrue's allow list, as `supabase start` configures it).
    fn redirect(&self, asked: Option<&str>) -> String {
        match asked {
            Some(r)
                if r.starts_with("http://127.0.0.1")
                    || r.starts_with("http://localhost")
                    || r.starts_with(&self.settings.site_url) =>
            {
                r.to_owned()
            }
            _ => self.settings.site_url.clone(),
        }
    }

    /// Makes a code for the user, replacing the last of its kind, and mails it.
    pub(super) async fn send_token(
        &self,
        user_id: &str,
        email: &str,
        purpose: Purpose,
        redirect_to: Option<&str>,
    ) -> Result<(), Reply> {
        let code = format!("{:06}", rand::rng().random_range(0..1_000_000u32));
        let hash = token_hash(email, &code);
        sqlx::query(
            "INSERT INTO auth.one_time_tokens (user_id, token_type, token_hash, relates_to) \
             VALUES (CAST($1 AS uuid), $2, $3, $4) \
             ON CONFLICT (user_id, token_type) DO UPDATE SET token_hash = EXCLUDED.token_hash, \
                 relates_to = EXCLUDED.relates_to, created_at = now(), updated_at = now()",
        )
        .bind(user_id)
        .bind(purpose.token_type())
        .bind(&hash)
        .bind(email)
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        sqlx::query(&format!(
            "UPDATE auth.users SET {} = now() WHERE id = CAST($1 AS uuid)",
            purpose.sent_column()
        ))
        .bind(user_id)
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        let redirect = self.redirect(redirect_to);
        let link = format!(
            "{}/verify?token={hash}&type={}&redirect_to={}",
            self.keys.issuer,
            purpose.verify_type(),
            super::super::rest::query::encode(&redirect),
        );
        let (heading, action) = match purpose {
            Purpose::Signup => (
                "Confirm your signup",
                "Follow this link to confirm your user:",
            ),
            Purpose::MagicLink => ("Magic Link", "Follow this link to login:"),
            Purpose::Recovery => (
                "Reset Password",
                "Follow this link to reset the password for your user:",
            ),
        };
        let text =
            format!("{heading}\n\n{action}\n{link}\n\nAlternatively, enter the code: {code}\n");
        let html = format!(
            "<h2>{heading}</h2>\n<p>{action}</p>\n<p><a href=\"{}\">{heading}</a></p>\n<p>Alternatively, enter the code: {code}</p>\n",
            link.replace('&', "&amp;")
        );
        self.inbox.deliver(email, purpose.subject(), text, html);
        Ok(())
    }

    async fn user_of_email(&self, email: &str) -> Result<Option<(String, bool)>, Reply> {
        sqlx::query_as(
            "SELECT id::text, email_confirmed_at IS NOT NULL FROM auth.users \
             WHERE lower(email) = $1 AND deleted_at IS NULL",
        )
        .bind(email)
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)
    }

    /// `POST /otp`: a magic link and code to the address; a new address becomes a user
    /// (unless `create_user` is false) whose first mail confirms it.
    pub(super) async fn otp(&self, query: &str, body: &[u8]) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        if b["phone"].as_str().is_some_and(|p| !p.is_empty()) {
            return Err(error(
                400,
                "phone_provider_disabled",
                "Unsupported phone provider",
            ));
        }
        if email_in(&b).is_empty() {
            return Err(error(
                400,
                "validation_failed",
                "An email address or phone number is required",
            ));
        }
        let email = checked_email(&b)?;
        let redirect = redirect_param(query, &b);
        let (id, confirmed) = match self.user_of_email(&email).await? {
            Some(u) => u,
            None => {
                if b["create_user"] == Value::Bool(false) {
                    return Err(error(422, "otp_disabled", "Signups not allowed for otp"));
                }
                let data = if b["data"].is_object() {
                    b["data"].clone()
                } else {
                    json!({})
                };
                let password = crate::secret::random_id(24);
                let id = self
                    .create_user(&email, &password, &data, &json!({}), false)
                    .await?
                    .ok_or_else(|| error(422, "user_already_exists", "User already registered"))?;
                (id, false)
            }
        };
        let purpose = if confirmed {
            Purpose::MagicLink
        } else {
            Purpose::Signup
        };
        self.send_token(&id, &email, purpose, redirect.as_deref())
            .await?;
        Ok(Reply::json(StatusCode::OK, json!({})))
    }

    /// `POST /recover`: a recovery mail, when the address is a user's; the answer is the
    /// same either way, so it tells nobody which addresses exist.
    pub(super) async fn recover(&self, query: &str, body: &[u8]) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        let email = checked_email(&b)?;
        if let Some((id, _)) = self.user_of_email(&email).await? {
            let redirect = redirect_param(query, &b);
            self.send_token(&id, &email, Purpose::Recovery, redirect.as_deref())
                .await?;
        }
        Ok(Reply::json(StatusCode::OK, json!({})))
    }

    /// `POST /resend`: the sign-up confirmation again, for an unconfirmed user.
    pub(super) async fn resend(&self, query: &str, body: &[u8]) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        match b["type"].as_str().unwrap_or_default() {
            "signup" => {}
            "email_change" | "sms" | "phone_change" => {
                return Err(error(
                    400,
                    "validation_failed",
                    "Only the signup confirmation is resent by this emulator",
                ));
            }
            _ => {
                return Err(error(
                    400,
                    "validation_failed",
                    "Missing one of these types: signup, email_change, sms, phone_change",
                ));
            }
        }
        let email = email_in(&b);
        if let Some((id, false)) = self.user_of_email(&email).await? {
            let redirect = redirect_param(query, &b);
            self.send_token(&id, &email, Purpose::Signup, redirect.as_deref())
                .await?;
        }
        Ok(Reply::json(StatusCode::OK, json!({})))
    }

    /// Spends a token of `kind`, named by the address and its code or by its hash; confirms
    /// the address and opens a session.
    async fn spend(
        &self,
        kind: &str,
        email: Option<&str>,
        code: Option<&str>,
        hash: Option<&str>,
    ) -> Result<Value, Reply> {
        let types = spends(kind).ok_or_else(|| {
            error(400, "validation_failed", &format!("Verify requires a verification type; `{kind}` is not one this emulator supports"))
        })?;
        let (email, hash) = match (email, code, hash) {
            (_, _, Some(h)) if !h.is_empty() => (None, h.to_owned()),
            (Some(e), Some(c), _) if !c.is_empty() => {
                let e = e.trim().to_lowercase();
                let h = token_hash(&e, c.trim());
                (Some(e), h)
            }
            _ => {
                return Err(error(
                    400,
                    "validation_failed",
                    "Verify requires either a token or a token hash",
                ));
            }
        };
        let types: Vec<String> = types.iter().map(|t| (*t).to_owned()).collect();
        let found: Option<(String, String)> = sqlx::query_as(
            "DELETE FROM auth.one_time_tokens t USING auth.users u \
             WHERE u.id = t.user_id AND t.token_type = ANY($1) AND t.token_hash = $2 \
               AND t.created_at > now() - make_interval(secs => $3) \
               AND ($4::text IS NULL OR lower(u.email) = $4) AND u.deleted_at IS NULL \
             RETURNING t.user_id::text, t.token_type",
        )
        .bind(&types)
        .bind(&hash)
        .bind(self.settings.otp_expiry.as_secs_f64())
        .bind(email.as_deref())
        .fetch_optional(&self.pool)
        .await
        .map_err(internal)?;
        let Some((id, _)) = found else {
            return Err(invalid());
        };
        sqlx::query(
            "WITH u AS (UPDATE auth.users SET email_confirmed_at = coalesce(email_confirmed_at, now()), \
                 updated_at = now() WHERE id = CAST($1 AS uuid) RETURNING id) \
             UPDATE auth.identities SET identity_data = identity_data || '{\"email_verified\": true}' \
             WHERE user_id IN (SELECT id FROM u) AND provider = 'email'",
        )
        .bind(&id)
        .execute(&self.pool)
        .await
        .map_err(internal)?;
        let method = if kind == "recovery" {
            "recovery"
        } else {
            "otp"
        };
        self.session_with(&id, method).await
    }

    /// `POST /verify` `{type, email, token}` or `{type, token_hash}`: the session.
    pub(super) async fn verify_post(&self, body: &[u8]) -> Result<Reply, Reply> {
        let b = body_json(body)?;
        let kind = b["type"].as_str().unwrap_or_default();
        if b["phone"].as_str().is_some_and(|p| !p.is_empty()) {
            return Err(error(
                400,
                "phone_provider_disabled",
                "Unsupported phone provider",
            ));
        }
        let session = self
            .spend(
                kind,
                b["email"].as_str(),
                b["token"].as_str(),
                b["token_hash"].as_str(),
            )
            .await?;
        Ok(Reply::json(StatusCode::OK, session))
    }

    /// `GET /verify?token=HASH&type=…&redirect_to=…`, the mailed link: a redirect with the
    /// session in the fragment, or with the error there.
    pub(super) async fn verify_get(&self, query: &str) -> Reply {
        let pairs = super::super::rest::query::pairs(query);
        let get = |k: &str| pairs.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
        let kind = get("type").unwrap_or_default();
        let target = self.redirect(get("redirect_to").as_deref());
        let enc = super::super::rest::query::encode;
        let fragment = match self.spend(&kind, None, None, get("token").as_deref()).await {
            Ok(s) => format!(
                "access_token={}&expires_at={}&expires_in={}&refresh_token={}&token_type=bearer&type={}",
                s["access_token"].as_str().unwrap_or_default(),
                s["expires_at"],
                s["expires_in"],
                s["refresh_token"].as_str().unwrap_or_default(),
                enc(&kind),
            ),
            Err(_) => "error=access_denied&error_code=otp_expired&error_description=Email+link+is+invalid+or+has+expired".to_owned(),
        };
        Reply::bytes(
            StatusCode::SEE_OTHER,
            "text/plain; charset=utf-8",
            Vec::new(),
        )
        .header("location", &format!("{target}#{fragment}"))
    }
}

/// `redirect_to`: the query's (supabase-js sends it there) or the body's.
fn redirect_param(query: &str, body: &Value) -> Option<String> {
    super::super::rest::query::pairs(query)
        .into_iter()
        .find(|(k, _)| k == "redirect_to")
        .map(|(_, v)| v)
        .or_else(|| body["redirect_to"].as_str().map(str::to_owned))
        .or_else(|| {
            body["options"]["email_redirect_to"]
                .as_str()
                .map(str::to_owned)
        })
}
