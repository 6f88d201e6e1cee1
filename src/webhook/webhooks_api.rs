//! 8x8's Webhooks API: the sub-account's webhooks listed (`GET`), created (`POST`) and deleted
//! (`DELETE .../webhooks/{type}`), for `phonetree webhooks`. The API documents no update: a
//! webhook is replaced by deleting it, then creating it again.

use serde::Deserialize;
use serde_json::Value;

use super::outbound::{API_TIMEOUT, ApiConfig};
use crate::secret::Secret;

/// The webhook 8x8 sends every `CALL_ACTION` to (`/webhooks/vca` on the node).
pub const CALL_ACTION: &str = "VCA";
/// The webhook 8x8 sends every `SESSION_SUMMARY` to (`/webhooks/vss` on the node).
pub const SESSION_SUMMARY: &str = "VSS";
/// How much of an unexpected answer an error shows: enough to read 8x8's message.
const ANSWER_CHARS_MAX: usize = 300;

/// One webhook as 8x8 lists it; the secret itself is never listed, only whether one is set.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct Webhook {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
    pub enabled: Option<bool>,
    pub http_auth_header_available: Option<bool>,
}

/// A failed request to one of 8x8's sub-account APIs (`api`: the Webhooks API, the speech-profiles
/// API).
#[derive(Debug, thiserror::Error)]
pub enum WebhooksApiError {
    #[error("the 8x8 API is not configured: set {0}")]
    NotConfigured(&'static str),
    #[error("cannot reach 8x8's {api} at {url}: {message}")]
    Transport { api: &'static str, url: String, message: String },
    #[error("8x8's {api} refused {what}: HTTP {status}: {answer}")]
    Refused { api: &'static str, what: String, status: u16, answer: String },
}

/// The name of the Webhooks API in errors.
const WEBHOOKS_API: &str = "Webhooks API";

/// One request to a sub-account API: which API (for errors), the method, the path below
/// `/api/v1/subaccounts/{sub}/`, and what it asks for (for errors).
pub(super) struct Ask<'a> {
    pub api: &'static str,
    pub method: reqwest::Method,
    pub path: String,
    pub what: &'a str,
}

#[derive(Deserialize)]
struct Listed {
    #[serde(default)]
    webhooks: Vec<Webhook>,
}

/// The sub-account's webhooks.
pub async fn list(http: &reqwest::Client, api: &ApiConfig) -> Result<Vec<Webhook>, WebhooksApiError> {
    let ask = Ask {
        api: WEBHOOKS_API,
        method: reqwest::Method::GET,
        path: "webhooks".into(),
        what: "the list of webhooks",
    };
    let body = request(http, api, ask, None, None).await?;
    let listed: Listed = serde_json::from_slice(&body).map_err(|e| WebhooksApiError::Refused {
        api: WEBHOOKS_API,
        what: "the list of webhooks".into(),
        status: 200,
        answer: format!("not the documented JSON ({e})"),
    })?;
    Ok(listed.webhooks)
}

/// Creates the `kind` webhook (`VCA`, `VSS`) to `url`, enabled, with `secret` as the
/// `httpAuthHeader` 8x8 sends with each webhook.
pub async fn create(
    http: &reqwest::Client,
    api: &ApiConfig,
    kind: &str,
    url: &str,
    secret: &Secret,
) -> Result<(), WebhooksApiError> {
    let body =
        serde_json::json!({"type": kind, "url": url, "httpAuthHeader": secret.expose(), "enabled": true});
    let what = format!("the {kind} webhook");
    let ask = Ask { api: WEBHOOKS_API, method: reqwest::Method::POST, path: "webhooks".into(), what: &what };
    request(http, api, ask, Some(&body), Some(secret)).await.map(drop)
}

/// Deletes the `kind` webhook.
pub async fn delete(http: &reqwest::Client, api: &ApiConfig, kind: &str) -> Result<(), WebhooksApiError> {
    let what = format!("deleting the {kind} webhook");
    let ask = Ask {
        api: WEBHOOKS_API,
        method: reqwest::Method::DELETE,
        path: format!("webhooks/{kind}"),
        what: &what,
    };
    request(http, api, ask, None, None).await.map(drop)
}

/// One request to `{base}/api/v1/subaccounts/{sub}/{path}` with the API key; the body of a 2xx
/// answer whose `statusCode`, if any, is 0. Errors show 8x8's answer with `redact` (the webhook
/// secret) cut out, should 8x8 ever echo it.
pub(super) async fn request(
    http: &reqwest::Client,
    api: &ApiConfig,
    ask: Ask<'_>,
    body: Option<&Value>,
    redact: Option<&Secret>,
) -> Result<Vec<u8>, WebhooksApiError> {
    let sub =
        api.sub_account.as_deref().ok_or(WebhooksApiError::NotConfigured("PHONETREE_8X8_SUBACCOUNT"))?;
    let key = api.api_key.as_ref().ok_or(WebhooksApiError::NotConfigured("PHONETREE_8X8_API_KEY"))?;
    let url = format!("{}/api/v1/subaccounts/{sub}/{}", api.base_url.trim_end_matches('/'), ask.path);
    let mut builder = http.request(ask.method, &url).bearer_auth(key.expose()).timeout(API_TIMEOUT);
    if let Some(body) = body {
        builder = builder.json(body);
    }
    let failed = |e: reqwest::Error| WebhooksApiError::Transport {
        api: ask.api,
        url: url.clone(),
        message: e.to_string(),
    };
    let response = builder.send().await.map_err(failed)?;
    let status = response.status().as_u16();
    let answer = response.bytes().await.map_err(failed)?.to_vec();
    let status_code = serde_json::from_slice::<Value>(&answer).ok().map(|v| v["statusCode"].clone());
    let accepted = match status_code {
        Some(Value::Number(n)) => n.as_i64() == Some(0),
        _ => true,
    };
    if (200..300).contains(&status) && accepted {
        return Ok(answer);
    }
    let mut text: String = String::from_utf8_lossy(&answer).trim().chars().take(ANSWER_CHARS_MAX).collect();
    if let Some(secret) = redact.filter(|s| !s.is_empty()) {
        text = text.replace(secret.expose(), "***");
    }
    Err(WebhooksApiError::Refused { api: ask.api, what: ask.what.to_string(), status, answer: text })
}
