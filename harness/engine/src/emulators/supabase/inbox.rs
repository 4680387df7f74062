//! The local inbox: where Auth's mails go (sign-up confirmations, magic links and one-time
//! codes, password recovery), read through a subset of Mailpit's API, the mail catcher
//! `supabase start` runs, under `/inbox` on the gateway: `GET /inbox/api/v1/messages`,
//! `GET /inbox/api/v1/search?query=to:ADDRESS`, `GET /inbox/api/v1/message/{ID|latest}` and
//! `DELETE /inbox/api/v1/messages`. Like Mailpit it takes no key; it is on 127.0.0.1 only.

use std::sync::Mutex;

use axum::http::{Method, StatusCode};
use serde_json::{Value, json};

use super::Reply;

/// One mail.
#[derive(Clone, Debug)]
pub struct Mail {
    pub id: String,
    pub to: String,
    pub subject: String,
    pub text: String,
    pub html: String,
    pub created: String,
}

/// The mails of one emulator, oldest first.
#[derive(Default)]
pub struct Inbox {
    mails: Mutex<Vec<Mail>>,
}

const FROM: &str = "admin@email.com";

fn address(a: &str) -> Value {
    json!({"Name": "", "Address": a})
}

impl Mail {
    fn summary(&self) -> Value {
        json!({
            "ID": self.id,
            "MessageID": format!("{}@harness.local", self.id),
            "Read": false,
            "From": {"Name": "Admin", "Address": FROM},
            "To": [address(&self.to)],
            "Cc": [], "Bcc": [], "ReplyTo": [],
            "Subject": self.subject,
            "Created": self.created,
            "Tags": [],
            "Size": self.text.len() + self.html.len(),
            "Attachments": 0,
            "Snippet": self.text.chars().take(250).collect::<String>().replace('\n', " "),
        })
    }

    fn whole(&self) -> Value {
        json!({
            "ID": self.id,
            "MessageID": format!("{}@harness.local", self.id),
            "From": {"Name": "Admin", "Address": FROM},
            "To": [address(&self.to)],
            "Cc": [], "Bcc": [], "ReplyTo": [],
            "ReturnPath": FROM,
            "Subject": self.subject,
            "Date": self.created,
            "Tags": [],
            "Text": self.text,
            "HTML": self.html,
            "Size": self.text.len() + self.html.len(),
            "Inline": [],
            "Attachments": [],
        })
    }
}

fn list(mails: &[&Mail]) -> Reply {
    let n = mails.len();
    Reply::json(
        StatusCode::OK,
        json!({
            "total": n, "unread": n, "count": n, "messages_count": n, "start": 0, "tags": [],
            "messages": mails.iter().rev().map(|m| m.summary()).collect::<Vec<_>>(),
        }),
    )
}

fn not_found() -> Reply {
    Reply::bytes(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        b"message not found\n".to_vec(),
    )
}

impl Inbox {
    pub fn deliver(&self, to: &str, subject: &str, text: String, html: String) {
        let mut mails = self.mails.lock().unwrap_or_else(|e| e.into_inner());
        mails.push(Mail {
            id: crate::secret::random_id(22),
            to: to.to_owned(),
            subject: subject.to_owned(),
            text,
            html,
            created: chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
        });
    }

    /// Serves `/inbox/{rest}`.
    pub fn serve(&self, method: &Method, rest: &str, query: &str) -> Reply {
        let mut mails = self.mails.lock().unwrap_or_else(|e| e.into_inner());
        match (method, rest) {
            (&Method::GET, "api/v1/messages") => list(&mails.iter().collect::<Vec<_>>()),
            (&Method::DELETE, "api/v1/messages") => {
                mails.clear();
                Reply::bytes(StatusCode::OK, "text/plain; charset=utf-8", b"ok".to_vec())
            }
            (&Method::GET, "api/v1/search") => {
                let q = super::rest::query::pairs(query)
                    .into_iter()
                    .find(|(k, _)| k == "query")
                    .map(|(_, v)| v)
                    .unwrap_or_default();
                let q = q.trim().to_lowercase();
                let found: Vec<&Mail> = mails
                    .iter()
                    .filter(|m| match q.strip_prefix("to:") {
                        Some(addr) => m.to.eq_ignore_ascii_case(addr.trim_matches('"')),
                        None => {
                            m.subject.to_lowercase().contains(&q)
                                || m.text.to_lowercase().contains(&q)
                                || m.to.to_lowercase().contains(&q)
                        }
                    })
                    .collect();
                list(&found)
            }
            (&Method::GET, p) if p.starts_with("api/v1/message/") => {
                let id = &p["api/v1/message/".len()..];
                let found = if id == "latest" {
                    mails.last()
                } else {
                    mails.iter().find(|m| m.id == id)
                };
                found.map_or_else(not_found, |m| Reply::json(StatusCode::OK, m.whole()))
            }
            _ => not_found(),
        }
    }
}
