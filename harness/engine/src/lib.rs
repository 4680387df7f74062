//! The harness engine: installs the real runtimes, starts them as a stack, and hands out
//! typed endpoints and ready clients.
//!
//! The CLI is a thin layer over this crate, and Rust tests use it directly:
//!
//! ```no_run
//! # async fn demo() -> Result<(), harness_engine::Error> {
//! use harness_engine::stack::Stack;
//!
//! let stack = Stack::builder().postgres().object_store().start().await?;
//! let pool = stack.postgres()?.pool().await?;
//! sqlx::query("select 1").execute(&pool).await?;
//! stack.shutdown().await;
//! # Ok(())
//! # }
//! ```

pub mod drills;
pub mod emulators;
pub mod error;
pub mod faults;
mod fsutil;
pub mod home;
pub mod progress;
pub mod report;
pub mod run;
pub mod runtimes;
pub mod secret;
pub mod stack;

pub use error::{Error, ExitCode};
