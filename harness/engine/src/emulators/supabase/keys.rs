//! The project's keys and JWTs: the legacy `anon` and `service_role` keys (HS256 JWTs signed
//! with the project's JWT secret, as Supabase issues them), the newer publishable and secret
//! keys (`sb_publishable_…`, `sb_secret_…`), and the user access tokens Auth issues: HS256
//! with the secret, or, with an asymmetric signing key as newer projects have, ES256 (P-256)
//! with the key's `kid`, its public half served as a JWKS. All are random per emulator (per
//! run); none is ever printed in a report.

use std::sync::Arc;

use base64::{Engine, engine::general_purpose::URL_SAFE_NO_PAD};
use hmac::{Hmac, Mac};
use ring::{
    rand::SystemRandom,
    signature::{
        ECDSA_P256_SHA256_FIXED, ECDSA_P256_SHA256_FIXED_SIGNING, EcdsaKeyPair, KeyPair,
        UnparsedPublicKey,
    },
};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::secret::Secret;

/// The database roles a request may take, as Supabase's gateway and PostgREST allow them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Role {
    Anon,
    Authenticated,
    ServiceRole,
}

impl Role {
    pub fn name(self) -> &'static str {
        match self {
            Role::Anon => "anon",
            Role::Authenticated => "authenticated",
            Role::ServiceRole => "service_role",
        }
    }

    pub fn from_name(name: &str) -> Option<Role> {
        match name {
            "anon" => Some(Role::Anon),
            "authenticated" => Some(Role::Authenticated),
            "service_role" => Some(Role::ServiceRole),
            _ => None,
        }
    }
}

/// The audience of the project's user tokens.
pub const AUDIENCE: &str = "authenticated";

/// Why a token was refused, worded as PostgREST words it (`PGRST301`, `PGRST303`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TokenError {
    /// Not three base64url parts of JSON.
    Malformed(String),
    /// `alg` is not HS256 (`none` included).
    Algorithm(String),
    /// The signature does not match the project's secret.
    Signature,
    Expired,
    /// `aud` is not what the surface accepts.
    Audience(String),
}

impl TokenError {
    pub fn message(&self) -> String {
        match self {
            TokenError::Malformed(why) => format!("JWSError (CompactDecodeError {why})"),
            TokenError::Algorithm(alg) => format!(
                "JWSError (JWSInvalidAlgorithm: {alg} is not one the project signs with: HS256, or ES256 with its signing key)"
            ),
            TokenError::Signature => "JWSError JWSInvalidSignature".into(),
            TokenError::Expired => "JWT expired".into(),
            TokenError::Audience(aud) => format!("JWT not in audience (its aud is {aud})"),
        }
    }

    /// PostgREST's code for it.
    pub fn code(&self) -> &'static str {
        match self {
            TokenError::Expired | TokenError::Audience(_) => "PGRST303",
            _ => "PGRST301",
        }
    }
}

/// The project's signing secret and API keys.
#[derive(Clone)]
pub struct Keys {
    jwt_secret: Secret,
    pub anon: Secret,
    pub service_role: Secret,
    pub publishable: Secret,
    pub secret: Secret,
    /// The `iss` of the tokens Auth issues (`{url}/auth/v1`).
    pub issuer: String,
    /// The asymmetric key user tokens are signed with, when the project has one.
    pub signing: Option<SigningKey>,
}

/// An ES256 (P-256) signing key, as Supabase's asymmetric JWT signing keys are by default.
#[derive(Clone)]
pub struct SigningKey {
    pair: Arc<EcdsaKeyPair>,
    pub kid: String,
}

impl SigningKey {
    pub fn generate() -> SigningKey {
        let rng = SystemRandom::new();
        let pkcs8 = EcdsaKeyPair::generate_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, &rng)
            .expect("the system's random source");
        let pair = EcdsaKeyPair::from_pkcs8(&ECDSA_P256_SHA256_FIXED_SIGNING, pkcs8.as_ref(), &rng)
            .expect("a key ring just made");
        SigningKey {
            pair: Arc::new(pair),
            kid: uuid_like(),
        }
    }

    /// The public key as a JWK (RFC 7518 §6.2: `x` and `y`, base64url).
    pub fn jwk(&self) -> Value {
        // Uncompressed point: 0x04, then x and y, 32 bytes each.
        let point = self.pair.public_key().as_ref();
        json!({
            "kty": "EC", "crv": "P-256", "alg": "ES256", "use": "sig", "key_ops": ["verify"],
            "kid": self.kid,
            "x": URL_SAFE_NO_PAD.encode(&point[1..33]),
            "y": URL_SAFE_NO_PAD.encode(&point[33..65]),
        })
    }

    fn sign(&self, claims: &Value) -> String {
        let header = URL_SAFE_NO_PAD
            .encode(json!({"alg": "ES256", "kid": self.kid, "typ": "JWT"}).to_string());
        let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
        let input = format!("{header}.{payload}");
        let sig = self
            .pair
            .sign(&SystemRandom::new(), input.as_bytes())
            .expect("ECDSA signing");
        format!("{input}.{}", URL_SAFE_NO_PAD.encode(sig.as_ref()))
    }

    fn verifies(&self, input: &[u8], sig: &[u8]) -> bool {
        UnparsedPublicKey::new(&ECDSA_P256_SHA256_FIXED, self.pair.public_key().as_ref())
            .verify(input, sig)
            .is_ok()
    }
}

/// A random id in a UUID's shape, for a key's `kid`.
fn uuid_like() -> String {
    let h = crate::secret::random_id(32).to_lowercase();
    let hex: String = h
        .bytes()
        .map(|b| char::from_digit(u32::from(b) % 16, 16).unwrap_or('0'))
        .collect();
    format!(
        "{}-{}-{}-{}-{}",
        &hex[..8],
        &hex[8..12],
        &hex[12..16],
        &hex[16..20],
        &hex[20..32]
    )
}

/// The header's `alg` and `kid`, before any signature is checked.
fn header_of(token: &str) -> Result<(String, Option<String>), TokenError> {
    let first = token.split('.').next().unwrap_or_default();
    let bytes = URL_SAFE_NO_PAD
        .decode(first.trim_end_matches('='))
        .map_err(|_| TokenError::Malformed("the header is not base64url".into()))?;
    let h: Value = serde_json::from_slice(&bytes)
        .map_err(|_| TokenError::Malformed("the header is not JSON".into()))?;
    Ok((
        h["alg"].as_str().unwrap_or("(none)").to_owned(),
        h["kid"].as_str().map(str::to_owned),
    ))
}

fn hmac(secret: &[u8], data: &[u8]) -> Vec<u8> {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(data);
    mac.finalize().into_bytes().to_vec()
}

/// An HS256 JWT of `claims`.
pub fn sign(secret: &[u8], claims: &Value) -> String {
    let header = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let payload = URL_SAFE_NO_PAD.encode(claims.to_string());
    let input = format!("{header}.{payload}");
    let sig = URL_SAFE_NO_PAD.encode(hmac(secret, input.as_bytes()));
    format!("{input}.{sig}")
}

/// Checks an HS256 JWT's signature and expiry, and returns its claims.
pub fn verify(secret: &[u8], token: &str, now: i64) -> Result<Value, TokenError> {
    let parts: Vec<&str> = token.split('.').collect();
    let [header, payload, sig] = parts[..] else {
        return Err(TokenError::Malformed(format!(
            "{} parts instead of 3",
            parts.len()
        )));
    };
    let decode = |part: &str, what: &str| -> Result<Value, TokenError> {
        let bytes = URL_SAFE_NO_PAD
            .decode(part.trim_end_matches('='))
            .map_err(|_| TokenError::Malformed(format!("the {what} is not base64url")))?;
        serde_json::from_slice(&bytes)
            .map_err(|_| TokenError::Malformed(format!("the {what} is not JSON")))
    };
    let h = decode(header, "header")?;
    let alg = h["alg"].as_str().unwrap_or("(none)");
    if alg != "HS256" {
        return Err(TokenError::Algorithm(alg.to_owned()));
    }
    let given = URL_SAFE_NO_PAD
        .decode(sig)
        .map_err(|_| TokenError::Signature)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(secret).expect("HMAC takes any key length");
    mac.update(format!("{header}.{payload}").as_bytes());
    mac.verify_slice(&given)
        .map_err(|_| TokenError::Signature)?;
    let claims = decode(payload, "payload")?;
    if let Some(exp) = claims["exp"].as_i64()
        && exp <= now
    {
        return Err(TokenError::Expired);
    }
    Ok(claims)
}

impl Keys {
    /// Fresh random keys for a project served at `url`.
    pub fn generate(url: &str) -> Keys {
        let jwt_secret = Secret::random(40);
        let now = chrono::Utc::now().timestamp();
        let key = |role: &str| {
            Secret::new(sign(
                jwt_secret.expose().as_bytes(),
                &json!({"iss": "supabase", "ref": "harness", "role": role, "iat": now, "exp": now + 10 * 365 * 86_400}),
            ))
        };
        Keys {
            anon: key("anon"),
            service_role: key("service_role"),
            publishable: Secret::new(format!("sb_publishable_{}", crate::secret::random_id(31))),
            secret: Secret::new(format!("sb_secret_{}", crate::secret::random_id(31))),
            issuer: format!("{url}/auth/v1"),
            jwt_secret,
            signing: None,
        }
    }

    /// The same keys, with an asymmetric signing key for user tokens.
    pub fn with_signing_key(mut self) -> Keys {
        self.signing = Some(SigningKey::generate());
        self
    }

    /// A user's access token: ES256 with the signing key when the project has one, else
    /// HS256 with the secret.
    pub fn sign_user(&self, claims: &Value) -> String {
        match &self.signing {
            Some(k) => k.sign(claims),
            None => self.sign(claims),
        }
    }

    /// `/auth/v1/.well-known/jwks.json`: the public signing keys (none for an HS256 project).
    pub fn jwks(&self) -> Value {
        json!({"keys": self.signing.iter().map(SigningKey::jwk).collect::<Vec<_>>()})
    }

    /// An ES256 token of the project's signing key: its `kid`, signature and expiry.
    fn verify_es256(&self, token: &str, kid: Option<&str>, now: i64) -> Result<Value, TokenError> {
        let key = self
            .signing
            .as_ref()
            .filter(|k| kid == Some(k.kid.as_str()))
            .ok_or_else(|| {
                TokenError::Algorithm("ES256 without the project's signing key".into())
            })?;
        let parts: Vec<&str> = token.split('.').collect();
        let [header, payload, sig] = parts[..] else {
            return Err(TokenError::Malformed(format!(
                "{} parts instead of 3",
                parts.len()
            )));
        };
        let sig = URL_SAFE_NO_PAD
            .decode(sig)
            .map_err(|_| TokenError::Signature)?;
        if !key.verifies(format!("{header}.{payload}").as_bytes(), &sig) {
            return Err(TokenError::Signature);
        }
        let bytes = URL_SAFE_NO_PAD
            .decode(payload.trim_end_matches('='))
            .map_err(|_| TokenError::Malformed("the payload is not base64url".into()))?;
        let claims: Value = serde_json::from_slice(&bytes)
            .map_err(|_| TokenError::Malformed("the payload is not JSON".into()))?;
        if let Some(exp) = claims["exp"].as_i64()
            && exp <= now
        {
            return Err(TokenError::Expired);
        }
        Ok(claims)
    }

    pub fn jwt_secret(&self) -> &Secret {
        &self.jwt_secret
    }

    /// Signs claims with the project's secret.
    pub fn sign(&self, claims: &Value) -> String {
        sign(self.jwt_secret.expose().as_bytes(), claims)
    }

    /// Verifies a JWT signed with the project's secret, for the project's audience: one
    /// without `aud` (the API keys, a signed URL's token), or with `authenticated` in it, as
    /// Supabase's Auth issues them; any other audience is refused (`PGRST303`).
    pub fn verify(&self, token: &str) -> Result<Value, TokenError> {
        let now = chrono::Utc::now().timestamp();
        let claims = match header_of(token)? {
            (alg, kid) if alg == "ES256" => self.verify_es256(token, kid.as_deref(), now)?,
            _ => verify(self.jwt_secret.expose().as_bytes(), token, now)?,
        };
        let ours = |v: &Value| v.as_str() == Some(AUDIENCE);
        match &claims["aud"] {
            Value::Null => Ok(claims),
            Value::Array(a) if a.iter().any(ours) => Ok(claims),
            v if ours(v) => Ok(claims),
            other => Err(TokenError::Audience(other.to_string())),
        }
    }

    /// The role an API key stands for, or `None` when it is none of the project's.
    pub fn role_of_key(&self, key: &str) -> Option<Role> {
        let eq = |s: &Secret| constant_eq(s.expose().as_bytes(), key.as_bytes());
        if eq(&self.anon) || eq(&self.publishable) {
            Some(Role::Anon)
        } else if eq(&self.service_role) || eq(&self.secret) {
            Some(Role::ServiceRole)
        } else {
            None
        }
    }

    /// Every key and the JWT secret, for redaction.
    pub fn secrets(&self) -> Vec<String> {
        [
            &self.jwt_secret,
            &self.anon,
            &self.service_role,
            &self.publishable,
            &self.secret,
        ]
        .iter()
        .map(|s| s.expose().to_owned())
        .collect()
    }
}

/// Compares without stopping at the first difference.
fn constant_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_es256_token_verifies_with_the_signing_key_only() {
        let keys = Keys::generate("http://127.0.0.1:1").with_signing_key();
        let claims = json!({"sub": "u1", "role": "authenticated", "aud": "authenticated", "exp": chrono::Utc::now().timestamp() + 60});
        let t = keys.sign_user(&claims);
        assert_eq!(header_of(&t).expect("header").0, "ES256");
        assert_eq!(keys.verify(&t).expect("valid")["sub"], "u1");
        // Another project's key, with the same kid, does not verify it.
        let mut other = Keys::generate("http://127.0.0.1:1").with_signing_key();
        if let (Some(o), Some(k)) = (&mut other.signing, &keys.signing) {
            o.kid = k.kid.clone();
        }
        assert_eq!(other.verify(&t), Err(TokenError::Signature));
        // An HS256 project refuses ES256.
        let hs = Keys::generate("http://127.0.0.1:1");
        assert!(matches!(hs.verify(&t), Err(TokenError::Algorithm(_))));
        // The JWKS has the key's public half.
        let jwks = keys.jwks();
        assert_eq!(
            jwks["keys"][0]["kid"],
            keys.signing.as_ref().expect("key").kid
        );
        assert_eq!(jwks["keys"][0]["crv"], "P-256");
        assert_eq!(hs.jwks(), json!({"keys": []}));
        // The legacy keys stay HS256 and verify.
        assert_eq!(
            keys.verify(keys.anon.expose()).expect("anon")["role"],
            "anon"
        );
    }

    #[test]
    fn a_token_signed_with_the_secret_verifies_and_nothing_else_does() {
        let secret = b"super-secret-jwt-token-with-at-least-32-characters";
        let t = sign(
            secret,
            &json!({"sub": "u1", "role": "authenticated", "exp": 2_000}),
        );
        assert_eq!(verify(secret, &t, 1_000).expect("valid")["sub"], "u1");
        assert_eq!(verify(secret, &t, 2_000), Err(TokenError::Expired));
        assert_eq!(verify(b"another", &t, 1_000), Err(TokenError::Signature));
        // alg none, and a token whose payload was changed after signing.
        let (h, rest) = t.split_once('.').expect("parts");
        let none = URL_SAFE_NO_PAD.encode(br#"{"alg":"none","typ":"JWT"}"#);
        assert!(matches!(
            verify(secret, &format!("{none}.{rest}"), 1_000),
            Err(TokenError::Algorithm(a)) if a == "none"
        ));
        let (_, sig) = rest.split_once('.').expect("parts");
        let forged = URL_SAFE_NO_PAD.encode(br#"{"sub":"u1","role":"service_role","exp":2000}"#);
        assert_eq!(
            verify(secret, &format!("{h}.{forged}.{sig}"), 1_000),
            Err(TokenError::Signature)
        );
        assert!(matches!(
            verify(secret, "a.b", 1_000),
            Err(TokenError::Malformed(_))
        ));
    }
}
