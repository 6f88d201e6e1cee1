//! 8x8's Send Callflow API: the request that places an outbound call, and its answer.

use std::time::Duration;

use serde::Deserialize;

use crate::secret::Secret;

/// How long phonetree waits for 8x8 to accept a callflow.
pub const API_TIMEOUT: Duration = Duration::from_secs(10);
/// 8x8's public API.
pub const DEFAULT_BASE_URL: &str = "https://voice.8x8.com";

#[derive(Debug, Clone, Default)]
pub struct ApiConfig {
    /// Scheme and host, e.g. `https://voice.8x8.com` (tests point it at a local stand-in).
    pub base_url: String,
    pub sub_account: Option<String>,
    pub api_key: Option<Secret>,
}

#[derive(Debug, thiserror::Error)]
pub enum OutboundError {
    #[error("no machine named `{0}` is loaded")]
    UnknownMachine(String),
    #[error("no caller ID: pass --from or give the machine a number")]
    NoCallerId,
    #[error("the 8x8 API is not configured: set {0}")]
    NotConfigured(&'static str),
    #[error("engine: {0}")]
    Engine(#[from] crate::engine::StepError),
    /// A variable the call may not give (`POST /calls` answers 400).
    #[error("{0}")]
    Variable(#[from] crate::engine::VariableError),
    #[error("the start node sends nothing to open the call with")]
    NothingToSend,
    #[error(transparent)]
    Encode(#[from] super::wire::EncodeError),
    #[error("8x8 did not create the call: status {code}: {message}")]
    NotCreated { code: i64, message: String },
    #[error("8x8 answered HTTP {status}: {body}")]
    Http { status: u16, body: String },
    #[error("cannot reach 8x8: {0}")]
    Transport(String),
    #[error("store: {0}")]
    Store(String),
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Created {
    session_id: Option<String>,
    session_status: Option<String>,
    status_code: Option<i64>,
    status_message: Option<String>,
}

/// `callflow` (8x8 JSON: `{"callflow": [...]}`) with its `validUntil` set to `until_ms`
/// (`YYYY-MM-DDTHH:MM:SS.SSSZ`, UTC, as 8x8 writes it).
pub fn with_valid_until(callflow: &[u8], until_ms: u64) -> Result<Vec<u8>, OutboundError> {
    let mut body: serde_json::Value = serde_json::from_slice(callflow)
        .map_err(|e| OutboundError::Transport(format!("the callflow is not JSON: {e}")))?;
    let at = i64::try_from(until_ms)
        .ok()
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .ok_or_else(|| OutboundError::Transport(format!("validUntil {until_ms} ms is out of range")))?;
    if let Some(map) = body.as_object_mut() {
        map.insert("validUntil".into(), at.strftime("%Y-%m-%dT%H:%M:%S%.3fZ").to_string().into());
    }
    serde_json::to_vec(&body).map_err(|e| OutboundError::Transport(e.to_string()))
}

/// POSTs `callflow` (8x8 JSON) to `{base}/api/v1/subaccounts/{sub}/callflows`, with a
/// `validUntil` when `valid_until_ms` is given; returns the session id.
pub async fn send_callflow(
    http: &reqwest::Client,
    api: &ApiConfig,
    callflow: &[u8],
    valid_until_ms: Option<u64>,
) -> Result<String, OutboundError> {
    let owned;
    let callflow = match valid_until_ms {
        Some(until) => {
            owned = with_valid_until(callflow, until)?;
            owned.as_slice()
        }
        None => callflow,
    };
    let sub = api.sub_account.as_deref().ok_or(OutboundError::NotConfigured("PHONETREE_8X8_SUBACCOUNT"))?;
    let key = api.api_key.as_ref().ok_or(OutboundError::NotConfigured("PHONETREE_8X8_API_KEY"))?.expose();
    let url = format!("{}/api/v1/subaccounts/{sub}/callflows", api.base_url.trim_end_matches('/'));
    let response = http
        .post(&url)
        .bearer_auth(key)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .timeout(API_TIMEOUT)
        .body(callflow.to_vec())
        .send()
        .await
        .map_err(|e| OutboundError::Transport(e.to_string()))?;
    let status = response.status().as_u16();
    let body = response.bytes().await.map_err(|e| OutboundError::Transport(e.to_string()))?;
    match serde_json::from_slice::<Created>(&body) {
        Ok(Created { session_id: Some(id), session_status: Some(s), .. })
            if s == "CREATED" && (200..300).contains(&status) =>
        {
            Ok(id)
        }
        Ok(Created { status_code: Some(code), status_message, .. }) => {
            Err(OutboundError::NotCreated { code, message: status_message.unwrap_or_default() })
        }
        _ => Err(OutboundError::Http {
            status,
            body: String::from_utf8_lossy(&body).chars().take(200).collect(),
        }),
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn valid_until_is_written_as_8x8_writes_it() {
        let body = super::with_valid_until(br#"{"callflow":[]}"#, 1_719_813_023_550).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&body).unwrap();
        assert_eq!(v["validUntil"], "2024-07-01T05:50:23.550Z");
        assert_eq!(v["callflow"], serde_json::json!([]));
    }
}
