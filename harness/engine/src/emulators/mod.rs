//! Endpoints harness itself serves in front of the real runtimes, for the real clients.
//!
//! - [`cloud_run`]: Cloud Run's Admin API (the v1 Knative-style surface `gcloud run` uses)
//!   over real instances of each revision, with an ingress per service.
//! - [`supabase`]: Supabase's gateway (Auth and PostgREST's REST surface) over the stack's
//!   real Postgres, whose row-level security decides what each caller sees.

pub mod cloud_run;
pub mod supabase;
