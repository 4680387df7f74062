//! Small helpers for talking to the stores, shared by the step kinds and the isolation
//! code: quoting a Postgres identifier, describing an S3 SDK error, and running a Cypher
//! query into JSON rows.

use aws_sdk_s3::error::{ProvideErrorMetadata, SdkError};
use serde_json::Value;

/// A Postgres identifier in double quotes, with inner quotes doubled.
pub fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// An S3 SDK error as one line: the service's code and message, or the transport error.
pub fn sdk_error<E: ProvideErrorMetadata + std::fmt::Debug, R: std::fmt::Debug>(
    e: &SdkError<E, R>,
) -> String {
    match e {
        SdkError::ServiceError(se) => {
            let err = se.err();
            format!(
                "{}: {}",
                err.code().unwrap_or("error"),
                err.message().unwrap_or("no message")
            )
        }
        other => format!("{other:?}").chars().take(300).collect(),
    }
}

/// Runs a Cypher query; each record becomes a JSON map from column to value.
pub async fn run_query(graph: &neo4rs::Graph, q: neo4rs::Query) -> Result<Value, String> {
    let mut stream = graph.execute(q).await.map_err(|e| e.to_string())?;
    let mut rows = Vec::new();
    while let Some(row) = stream.next().await.map_err(|e| e.to_string())? {
        let value: Value = row.to().map_err(|e| format!("reading a record: {e}"))?;
        rows.push(value);
    }
    Ok(Value::Array(rows))
}
