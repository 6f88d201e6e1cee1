//! Who may post webhooks: a shared secret, sent by 8x8 in a header (the `httpAuthHeader` of its
//! Webhooks API) or as an HS256 JWT in the URL's `token` query parameter (as the Kore.ai seed
//! protects its webhook URL). Secrets are compared in constant time and never shown.

use std::sync::{Arc, RwLock};

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use subtle::ConstantTimeEq;
use warp::http::HeaderMap;
use warp::http::header::HeaderName;

use crate::secret::Secret;

/// The header 8x8 sends the webhook's `httpAuthHeader` in, unless `--webhook-auth-header` names
/// another (8x8's docs do not name it).
pub const DEFAULT_HEADER: &str = "authorization";
/// How far a JWT's `exp` and `nbf` may be off: clocks of two machines drift by seconds.
pub const JWT_LEEWAY_SECS: u64 = 30;
/// Longest JWT read: a token that routes a webhook carries a few claims.
pub const JWT_BYTES_MAX: usize = 4096;
/// Longest a JWT may live: its `exp` at most this far past its `iat` and past now (plus
/// `JWT_LEEWAY_SECS`). A webhook URL's token is minted for one configuration and rotated with the
/// secret; one that never expires (`exp` 2^64-1) would outlive every rotation if it leaked.
pub const JWT_LIFETIME_MAX_SECS: u64 = 3600;
/// Shortest secret accepted: anything shorter can be guessed.
pub const SECRET_BYTES_MIN: usize = 16;

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The secrets webhooks must carry one of (several, so one can be rotated without downtime); none:
/// every webhook is accepted. Clones share the secrets: `replace` (a reload re-reading the secret
/// files) changes them for every clone at once.
#[derive(Debug, Clone)]
pub struct WebhookAuth {
    header: HeaderName,
    secrets: Arc<RwLock<Arc<[Secret]>>>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthConfigError {
    #[error("`{0}` is not an HTTP header name")]
    Header(String),
    #[error("a webhook secret is {0} bytes; use at least {SECRET_BYTES_MIN} (e.g. `openssl rand -hex 32`)")]
    TooShort(usize),
    #[error(
        "the admin token is {0} bytes; use at least {SECRET_BYTES_MIN} (e.g. `openssl rand -hex 32`), or \
         leave --admin-token and --admin-token-file out for a generated one"
    )]
    AdminTooShort(usize),
    #[error(
        "the webhook secret files now hold no secret, which would let every webhook in; the running \
         secrets stay (put at least one secret back, then reload)"
    )]
    NoneLeft,
    #[error("the admin token file now holds no token; the running token stays (write one back, then reload)")]
    NoAdminTokenLeft,
}

/// Why a webhook was refused (the client is told only that it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Denied {
    #[error("no credentials: send the webhook secret in the `{0}` header or a JWT in `?token=`")]
    Missing(&'static str),
    #[error("the credentials do not match any webhook secret")]
    Wrong,
    #[error("the token is not an HS256 JWT signed with a webhook secret")]
    BadToken,
    #[error("the token has expired, or is not valid yet")]
    Expired,
    #[error("the token lives longer than {JWT_LIFETIME_MAX_SECS} s (`exp` too far past `iat` or now)")]
    TooLong,
}

impl Default for WebhookAuth {
    /// Accepts every webhook.
    fn default() -> WebhookAuth {
        WebhookAuth::open()
    }
}

impl WebhookAuth {
    /// Accepts every webhook.
    pub fn open() -> WebhookAuth {
        WebhookAuth::with(HeaderName::from_static(DEFAULT_HEADER), Vec::new())
    }

    fn with(header: HeaderName, secrets: Vec<Secret>) -> WebhookAuth {
        WebhookAuth { header, secrets: Arc::new(RwLock::new(secrets.into())) }
    }

    pub fn new(header: &str, secrets: Vec<Secret>) -> Result<WebhookAuth, AuthConfigError> {
        let header = HeaderName::from_bytes(header.trim().to_ascii_lowercase().as_bytes())
            .map_err(|_| AuthConfigError::Header(header.to_string()))?;
        let secrets = secrets
            .into_iter()
            .filter(|s| !s.is_empty())
            .map(|s| if s.len() < SECRET_BYTES_MIN { Err(AuthConfigError::TooShort(s.len())) } else { Ok(s) })
            .collect::<Result<_, _>>()?;
        Ok(WebhookAuth::with(header, secrets))
    }

    /// The secrets now (a reload may replace them while a request is checked: it checks these).
    fn secrets(&self) -> Arc<[Secret]> {
        self.secrets.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// True when no secret is configured.
    pub fn is_open(&self) -> bool {
        self.secrets().is_empty()
    }

    /// Puts `fresh`'s secrets in place of these, for every clone (a reload re-read the secret
    /// files). A node that checks secrets never stops: `fresh` without any is refused, and the
    /// running secrets stay.
    pub fn replace(&self, fresh: &WebhookAuth) -> Result<(), AuthConfigError> {
        let secrets = fresh.secrets();
        if secrets.is_empty() && !self.is_open() {
            return Err(AuthConfigError::NoneLeft);
        }
        *self.secrets.write().unwrap_or_else(|e| e.into_inner()) = secrets;
        Ok(())
    }

    /// Checks one request's credentials at `now_secs` (seconds since the epoch).
    pub fn check(&self, headers: &HeaderMap, query: Option<&str>, now_secs: u64) -> Result<(), Denied> {
        let secrets = self.secrets();
        if secrets.is_empty() {
            return Ok(());
        }
        if let Some(value) = headers.get(&self.header) {
            let value = value.as_bytes();
            let value = value.strip_prefix(b"Bearer ").unwrap_or(value);
            return match secrets.iter().any(|s| bool::from(s.expose().as_bytes().ct_eq(value))) {
                true => Ok(()),
                false => Err(Denied::Wrong),
            };
        }
        let token = query
            .into_iter()
            .flat_map(|q| url::form_urlencoded::parse(q.as_bytes()))
            .find_map(|(k, v)| (k == "token").then(|| v.into_owned()));
        match token {
            Some(token) => check_jwt(&secrets, &token, now_secs),
            None => Err(Denied::Missing(DEFAULT_HEADER)),
        }
    }
}

/// An HS256 JWT signed with one of `secrets`, within its `exp` (required) and `nbf`, living at
/// most `JWT_LIFETIME_MAX_SECS`, with no key twice in its header or claims.
fn check_jwt(secrets: &[Secret], token: &str, now_secs: u64) -> Result<(), Denied> {
    if token.len() > JWT_BYTES_MAX {
        return Err(Denied::BadToken);
    }
    let mut parts = token.split('.');
    let (Some(head), Some(body), Some(sig), None) = (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return Err(Denied::BadToken);
    };
    let json = |part: &str| {
        let bytes = URL_SAFE_NO_PAD.decode(part).map_err(|_| Denied::BadToken)?;
        serde_json::from_slice::<UniqueKeys>(&bytes).map(|o| o.0).map_err(|_| Denied::BadToken)
    };
    if json(head)?.get("alg").and_then(|a| a.as_str()) != Some("HS256") {
        return Err(Denied::BadToken);
    }
    let sig = URL_SAFE_NO_PAD.decode(sig).map_err(|_| Denied::BadToken)?;
    let signed = &token[..head.len() + 1 + body.len()];
    let valid = secrets.iter().any(|s| {
        HmacSha256::new_from_slice(s.expose().as_bytes())
            .map(|mut mac| {
                mac.update(signed.as_bytes());
                mac.verify_slice(&sig).is_ok()
            })
            .unwrap_or(false)
    });
    if !valid {
        return Err(Denied::BadToken);
    }
    let claims = json(body)?;
    let exp = claims.get("exp").and_then(serde_json::Value::as_u64).ok_or(Denied::BadToken)?;
    let nbf = claims.get("nbf").and_then(serde_json::Value::as_u64).unwrap_or(0);
    let fresh =
        now_secs <= exp.saturating_add(JWT_LEEWAY_SECS) && now_secs.saturating_add(JWT_LEEWAY_SECS) >= nbf;
    if !fresh {
        return Err(Denied::Expired);
    }
    let longest = JWT_LIFETIME_MAX_SECS.saturating_add(JWT_LEEWAY_SECS);
    let from_now = exp.saturating_sub(now_secs);
    let from_issue = match claims.get("iat") {
        None => 0,
        Some(iat) => exp.saturating_sub(iat.as_u64().ok_or(Denied::BadToken)?),
    };
    match from_now > longest || from_issue > JWT_LIFETIME_MAX_SECS {
        true => Err(Denied::TooLong),
        false => Ok(()),
    }
}

/// A JWT part: a JSON object whose keys are all different. `serde_json::Value` keeps the last of
/// two equal keys, so `{"alg":"none","alg":"HS256"}` would read as HS256 here and as `none` to a
/// parser that keeps the first: such a token is refused, not guessed at.
struct UniqueKeys(serde_json::Map<String, serde_json::Value>);

impl<'de> serde::Deserialize<'de> for UniqueKeys {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<UniqueKeys, D::Error> {
        struct Visitor;
        impl<'de> serde::de::Visitor<'de> for Visitor {
            type Value = UniqueKeys;
            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("a JSON object without duplicate keys")
            }
            fn visit_map<A: serde::de::MapAccess<'de>>(self, mut map: A) -> Result<UniqueKeys, A::Error> {
                let mut out = serde_json::Map::new();
                while let Some(key) = map.next_key::<String>()? {
                    let value = map.next_value::<serde_json::Value>()?;
                    if out.insert(key.clone(), value).is_some() {
                        return Err(serde::de::Error::custom(format_args!("duplicate key `{key}`")));
                    }
                }
                Ok(UniqueKeys(out))
            }
        }
        d.deserialize_map(Visitor)
    }
}

/// Who may use the admin listener, and from where: with a token, requests carrying
/// `Authorization: Bearer TOKEN` (without one, everyone who reaches it: `serve` allows that on
/// loopback only, with `--admin-no-token`); and, token or not, nothing a web page in an operator's
/// browser can be made to send: a `Host` that is not the listener's (DNS rebinding), an `Origin`
/// other than the listener's own (another site's page), a POST that is not JSON (a form).
#[derive(Debug, Clone, Default)]
pub struct AdminAuth {
    /// Shared by every clone: a reload that re-read the token file puts the new one here.
    token: Arc<RwLock<Option<Secret>>>,
    /// `--admin-host`: further names the listener is reached by (`HOST` or `HOST:PORT`), lowercase.
    hosts: Vec<String>,
    /// The address the listener is bound to (set once it is bound).
    listener: Option<std::net::SocketAddr>,
}

/// Why an admin request was refused (the client is told only that it was).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AdminDenied {
    #[error("no admin token: send `Authorization: Bearer TOKEN` (the --admin-token of the node)")]
    Missing,
    #[error("the admin token does not match")]
    Wrong,
    #[error(
        "the Host header does not name this admin listener: use its address (or localhost), or start the \
         node with --admin-host NAME for a name it is reached by"
    )]
    Host,
    #[error("the request comes from a page of another origin: the admin listener answers only its own pages")]
    Origin,
    #[error("a POST to the admin listener must be JSON: send `Content-Type: application/json`")]
    NotJson,
}

impl AdminDenied {
    /// The status and error code the refusal is answered with.
    pub fn answer(self) -> (warp::http::StatusCode, &'static str) {
        use warp::http::StatusCode;
        match self {
            AdminDenied::Missing | AdminDenied::Wrong => (StatusCode::UNAUTHORIZED, "unauthorized"),
            AdminDenied::Host => (StatusCode::MISDIRECTED_REQUEST, "wrong_host"),
            AdminDenied::Origin => (StatusCode::FORBIDDEN, "cross_origin"),
            AdminDenied::NotJson => (StatusCode::UNSUPPORTED_MEDIA_TYPE, "unsupported_media_type"),
        }
    }
}

impl AdminAuth {
    /// `token`, at least `SECRET_BYTES_MIN` bytes; `None` (or an empty one): no token.
    pub fn new(token: Option<Secret>) -> Result<AdminAuth, AuthConfigError> {
        match token.filter(|t| !t.is_empty()) {
            Some(t) if t.len() < SECRET_BYTES_MIN => Err(AuthConfigError::AdminTooShort(t.len())),
            token => Ok(AdminAuth { token: Arc::new(RwLock::new(token)), hosts: Vec::new(), listener: None }),
        }
    }

    /// The token now (a reload may replace it while a request is checked: it checks this one).
    fn token(&self) -> Option<Secret> {
        self.token.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Puts `fresh`'s token in place of this one, for every clone (a reload re-read the token
    /// file). A listener with a token keeps one: `fresh` without any is refused, and the running
    /// token stays.
    pub fn replace(&self, fresh: &AdminAuth) -> Result<(), AuthConfigError> {
        let Some(token) = fresh.token() else { return Err(AuthConfigError::NoAdminTokenLeft) };
        *self.token.write().unwrap_or_else(|e| e.into_inner()) = Some(token);
        Ok(())
    }

    /// The same, also answering requests whose `Host` is one of `hosts` (`--admin-host`:
    /// `HOST` matches on any port, `HOST:PORT` on that port).
    pub fn with_hosts(self, hosts: &[String]) -> AdminAuth {
        let hosts = hosts.iter().map(|h| h.trim().to_ascii_lowercase()).filter(|h| !h.is_empty()).collect();
        AdminAuth { hosts, ..self }
    }

    /// The same, for the listener bound to `addr`.
    pub fn bound_to(self, addr: std::net::SocketAddr) -> AdminAuth {
        AdminAuth { listener: Some(addr), ..self }
    }

    /// True when no token is configured.
    pub fn is_open(&self) -> bool {
        self.token().is_none()
    }

    /// Checks one admin request's `Authorization` header.
    pub fn check(&self, headers: &HeaderMap) -> Result<(), AdminDenied> {
        let Some(token) = self.token() else { return Ok(()) };
        let value = headers.get("authorization").ok_or(AdminDenied::Missing)?.as_bytes();
        let value = value.strip_prefix(b"Bearer ").ok_or(AdminDenied::Missing)?;
        match bool::from(token.expose().as_bytes().ct_eq(value)) {
            true => Ok(()),
            false => Err(AdminDenied::Wrong),
        }
    }

    /// Checks what a browser could be tricked into sending, before anything else (the console's
    /// page included): the `Host` names this listener (against DNS rebinding), and an `Origin`
    /// (when sent) is the origin of that host (against another site's page).
    pub fn check_source(&self, headers: &HeaderMap) -> Result<(), AdminDenied> {
        let host = headers
            .get(warp::http::header::HOST)
            .and_then(|h| h.to_str().ok())
            .map(|h| h.trim().to_ascii_lowercase())
            .filter(|h| self.host_allowed(h))
            .ok_or(AdminDenied::Host)?;
        if let Some(origin) = headers.get(warp::http::header::ORIGIN) {
            let origin = origin.to_str().map_err(|_| AdminDenied::Origin)?.trim().to_ascii_lowercase();
            let authority = origin.strip_prefix("http://").or_else(|| origin.strip_prefix("https://"));
            if authority != Some(host.as_str()) {
                return Err(AdminDenied::Origin);
            }
        }
        Ok(())
    }

    /// A POST must say its body is JSON: a form, or a `text/plain` fetch, cannot without a CORS
    /// preflight, which this listener never answers. A POST with no body and no content type
    /// (`POST /admin/reload` as curl sends it) carries nothing to type; a browser sending one
    /// cross-origin sends its `Origin`, which `check_source` refuses. Other methods reach the
    /// routes, which answer 405 where they take none.
    pub fn check_json(&self, method: &warp::http::Method, headers: &HeaderMap) -> Result<(), AdminDenied> {
        use warp::http::{Method, header};
        if method != Method::POST {
            return Ok(());
        }
        let content_type = headers.get(header::CONTENT_TYPE);
        let bodyless = !headers.contains_key(header::TRANSFER_ENCODING)
            && headers.get(header::CONTENT_LENGTH).is_none_or(|v| v.as_bytes() == b"0");
        if content_type.is_none() && bodyless {
            return Ok(());
        }
        let json = content_type
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.split(';').next())
            .is_some_and(|t| t.trim().eq_ignore_ascii_case("application/json"));
        json.then_some(()).ok_or(AdminDenied::NotJson)
    }

    /// Whether `host` (a lowercase `Host` value) names this listener: its IP address (any IP
    /// address when it is bound to every interface; a name is what DNS rebinding needs),
    /// `localhost` when it is on loopback, or an `--admin-host`. The port is not compared: an SSH
    /// tunnel or a proxy in front changes it, and no rebinding can choose it.
    fn host_allowed(&self, host: &str) -> bool {
        let name = match host.strip_prefix('[') {
            Some(rest) => rest.split_once(']').map_or(rest, |(ip, _)| ip),
            None => {
                host.rsplit_once(':').filter(|(_, port)| port.parse::<u16>().is_ok()).map_or(host, |(h, _)| h)
            }
        };
        if self.hosts.iter().any(|h| h == host || h == name) {
            return true;
        }
        let Some(listener) = self.listener else { return false };
        let bound = listener.ip().to_canonical();
        match name.parse::<std::net::IpAddr>() {
            Ok(ip) => bound.is_unspecified() || ip.to_canonical() == bound,
            Err(_) => name == "localhost" && (bound.is_loopback() || bound.is_unspecified()),
        }
    }
}

/// An HS256 JWT with `claims`, signed with `secret` (for `phonetree` users who put the token in
/// the webhook URL, and for tests).
pub fn sign_jwt(secret: &str, claims: &serde_json::Value) -> String {
    let head = URL_SAFE_NO_PAD.encode(br#"{"alg":"HS256","typ":"JWT"}"#);
    let body = URL_SAFE_NO_PAD.encode(claims.to_string());
    let signed = format!("{head}.{body}");
    let sig = HmacSha256::new_from_slice(secret.as_bytes()).map(|mut mac| {
        mac.update(signed.as_bytes());
        mac.finalize().into_bytes().to_vec()
    });
    format!("{signed}.{}", URL_SAFE_NO_PAD.encode(sig.unwrap_or_default()))
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &str = "0123456789abcdef-webhook";

    fn auth() -> WebhookAuth {
        WebhookAuth::new(
            "Authorization",
            vec![Secret::new(SECRET), Secret::new("another-secret-for-rotation")],
        )
        .unwrap()
    }

    fn headers(value: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("authorization", value.parse().unwrap());
        h
    }

    #[test]
    fn the_header_must_carry_one_of_the_secrets() {
        let a = auth();
        assert_eq!(a.check(&headers(SECRET), None, 0), Ok(()));
        assert_eq!(a.check(&headers(&format!("Bearer {SECRET}")), None, 0), Ok(()));
        assert_eq!(a.check(&headers("another-secret-for-rotation"), None, 0), Ok(()));
        assert_eq!(a.check(&headers("0123456789abcdef-webhooK"), None, 0), Err(Denied::Wrong));
        assert_eq!(a.check(&headers(""), None, 0), Err(Denied::Wrong));
        assert_eq!(a.check(&HeaderMap::new(), None, 0), Err(Denied::Missing(DEFAULT_HEADER)));
        assert_eq!(WebhookAuth::open().check(&HeaderMap::new(), None, 0), Ok(()));
    }

    #[test]
    fn a_jwt_in_the_token_parameter_is_checked_for_signature_algorithm_and_time() {
        let a = auth();
        let now = 1_800_000_000;
        let good = sign_jwt(SECRET, &serde_json::json!({"exp": now + 60}));
        assert_eq!(a.check(&HeaderMap::new(), Some(&format!("token={good}")), now), Ok(()));
        assert_eq!(
            a.check(&HeaderMap::new(), Some(&format!("a=1&token={good}")), now + 60 + JWT_LEEWAY_SECS),
            Ok(())
        );
        assert_eq!(
            a.check(&HeaderMap::new(), Some(&format!("token={good}")), now + 61 + JWT_LEEWAY_SECS),
            Err(Denied::Expired)
        );
        let foreign = sign_jwt("a-secret-nobody-configured", &serde_json::json!({"exp": now + 60}));
        assert_eq!(a.check(&HeaderMap::new(), Some(&format!("token={foreign}")), now), Err(Denied::BadToken));
        let no_exp = sign_jwt(SECRET, &serde_json::json!({"sub": "8x8"}));
        assert_eq!(a.check(&HeaderMap::new(), Some(&format!("token={no_exp}")), now), Err(Denied::BadToken));
        let later = sign_jwt(SECRET, &serde_json::json!({"exp": now + 600, "nbf": now + 300}));
        assert_eq!(a.check(&HeaderMap::new(), Some(&format!("token={later}")), now), Err(Denied::Expired));
        // `alg: none` with the signature stripped.
        let none = format!(
            "{}.{}.",
            URL_SAFE_NO_PAD.encode(br#"{"alg":"none"}"#),
            URL_SAFE_NO_PAD.encode(format!(r#"{{"exp":{}}}"#, now + 60))
        );
        assert_eq!(a.check(&HeaderMap::new(), Some(&format!("token={none}")), now), Err(Denied::BadToken));
        assert_eq!(a.check(&HeaderMap::new(), Some("token=not.a.jwt"), now), Err(Denied::BadToken));
    }

    /// A JWT of raw header and claims texts, signed with `secret`.
    fn sign_raw(secret: &str, head: &str, claims: &str) -> String {
        let signed = format!("{}.{}", URL_SAFE_NO_PAD.encode(head), URL_SAFE_NO_PAD.encode(claims));
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(signed.as_bytes());
        format!("{signed}.{}", URL_SAFE_NO_PAD.encode(mac.finalize().into_bytes()))
    }

    #[test]
    fn a_jwt_living_longer_than_the_maximum_is_refused() {
        let a = auth();
        let now = 1_800_000_000u64;
        let check = |claims: serde_json::Value| {
            a.check(&HeaderMap::new(), Some(&format!("token={}", sign_jwt(SECRET, &claims))), now)
        };
        assert_eq!(check(serde_json::json!({"exp": u64::MAX})), Err(Denied::TooLong));
        assert_eq!(check(serde_json::json!({"exp": now + 2 * JWT_LIFETIME_MAX_SECS})), Err(Denied::TooLong));
        assert_eq!(check(serde_json::json!({"exp": now + JWT_LIFETIME_MAX_SECS})), Ok(()));
        assert_eq!(
            check(serde_json::json!({"exp": now + JWT_LIFETIME_MAX_SECS + JWT_LEEWAY_SECS + 1})),
            Err(Denied::TooLong)
        );
        // Issued long ago, expiring soon: `exp - iat` is over the maximum.
        let old = now - 2 * JWT_LIFETIME_MAX_SECS;
        assert_eq!(check(serde_json::json!({"exp": now + 60, "iat": old})), Err(Denied::TooLong));
        assert_eq!(check(serde_json::json!({"exp": now + 60, "iat": now})), Ok(()));
        assert_eq!(check(serde_json::json!({"exp": now + 60, "iat": "yesterday"})), Err(Denied::BadToken));
    }

    #[test]
    fn a_jwt_with_a_key_twice_is_refused() {
        let a = auth();
        let now = 1_800_000_000u64;
        let exp = now + 60;
        let check = |head: &str, claims: &str| {
            a.check(&HeaderMap::new(), Some(&format!("token={}", sign_raw(SECRET, head, claims))), now)
        };
        let claims = format!(r#"{{"exp":{exp}}}"#);
        assert_eq!(check(r#"{"alg":"HS256","typ":"JWT"}"#, &claims), Ok(()));
        assert_eq!(check(r#"{"alg":"none","alg":"HS256"}"#, &claims), Err(Denied::BadToken));
        assert_eq!(check(r#"{"alg":"HS256","typ":"JWT","typ":"JWT"}"#, &claims), Err(Denied::BadToken));
        assert_eq!(
            check(r#"{"alg":"HS256"}"#, &format!(r#"{{"exp":{exp},"exp":{}}}"#, u64::MAX)),
            Err(Denied::BadToken)
        );
        assert_eq!(
            check(r#"{"alg":"HS256"}"#, &format!(r#"{{"exp":{exp},"nbf":0,"nbf":0}}"#)),
            Err(Denied::BadToken)
        );
        assert_eq!(check(r#"["alg","HS256"]"#, &claims), Err(Denied::BadToken));
    }

    #[test]
    fn the_admin_token_is_a_bearer_token() {
        let a = AdminAuth::new(Some(Secret::new(SECRET))).unwrap();
        assert_eq!(a.check(&headers(&format!("Bearer {SECRET}"))), Ok(()));
        assert_eq!(a.check(&headers(SECRET)), Err(AdminDenied::Missing));
        assert_eq!(a.check(&headers("Bearer another-secret-for-rotation")), Err(AdminDenied::Wrong));
        assert_eq!(a.check(&HeaderMap::new()), Err(AdminDenied::Missing));
        assert_eq!(AdminAuth::new(None).unwrap().check(&HeaderMap::new()), Ok(()));
        assert!(!format!("{a:?}").contains(SECRET));
    }

    #[test]
    fn a_short_admin_token_is_called_an_admin_token() {
        let e = AdminAuth::new(Some(Secret::new("short"))).unwrap_err();
        assert_eq!(e, AuthConfigError::AdminTooShort(5));
        assert!(e.to_string().starts_with("the admin token is 5 bytes; use at least 16"), "{e}");
        assert!(!e.to_string().contains("webhook"), "{e}");
    }

    fn request(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut h = HeaderMap::new();
        for (k, v) in pairs {
            h.append(HeaderName::from_bytes(k.as_bytes()).unwrap(), v.parse().unwrap());
        }
        h
    }

    #[test]
    fn a_browser_cannot_be_made_to_reach_the_admin_listener() {
        use warp::http::Method;
        let a = AdminAuth::new(None).unwrap().bound_to("127.0.0.1:9090".parse().unwrap());
        let get = |h: &[(&str, &str)]| {
            let h = request(h);
            a.check_source(&h).and_then(|()| a.check_json(&Method::GET, &h))
        };
        let post = |h: &[(&str, &str)]| {
            let h = request(h);
            a.check_source(&h).and_then(|()| a.check_json(&Method::POST, &h))
        };
        assert_eq!(get(&[("host", "127.0.0.1:9090")]), Ok(()));
        assert_eq!(get(&[("host", "127.0.0.1:9999")]), Ok(()), "an SSH tunnel's local port");
        assert_eq!(get(&[("host", "localhost:9090")]), Ok(()));
        assert_eq!(get(&[("host", "attacker.example")]), Err(AdminDenied::Host));
        assert_eq!(get(&[("host", "attacker.example:9090")]), Err(AdminDenied::Host));
        assert_eq!(get(&[("host", "127.0.0.2:9090")]), Err(AdminDenied::Host));
        assert_eq!(get(&[]), Err(AdminDenied::Host));
        assert_eq!(get(&[("host", "127.0.0.1:9090"), ("origin", "http://127.0.0.1:9090")]), Ok(()));
        assert_eq!(
            get(&[("host", "127.0.0.1:9090"), ("origin", "http://127.0.0.1:8000")]),
            Err(AdminDenied::Origin)
        );
        assert_eq!(get(&[("host", "127.0.0.1:9090"), ("origin", "null")]), Err(AdminDenied::Origin));
        let json = ("content-type", "application/json; charset=utf-8");
        assert_eq!(post(&[("host", "127.0.0.1:9090"), json]), Ok(()));
        for other in ["text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"] {
            assert_eq!(
                post(&[("host", "127.0.0.1:9090"), ("content-type", other)]),
                Err(AdminDenied::NotJson),
                "{other}"
            );
        }
        // A body without a content type is not JSON; no body and no content type carries nothing.
        assert_eq!(post(&[("host", "127.0.0.1:9090"), ("content-length", "5")]), Err(AdminDenied::NotJson));
        assert_eq!(
            post(&[("host", "127.0.0.1:9090"), ("transfer-encoding", "chunked")]),
            Err(AdminDenied::NotJson)
        );
        assert_eq!(post(&[("host", "127.0.0.1:9090")]), Ok(()));
        assert_eq!(post(&[("host", "127.0.0.1:9090"), ("content-length", "0")]), Ok(()));
        // ...but a browser sending it from another origin says so.
        assert_eq!(
            post(&[("host", "127.0.0.1:9090"), ("origin", "http://attacker.example")]),
            Err(AdminDenied::Origin)
        );
        assert_eq!(AdminDenied::NotJson.answer().0.as_u16(), 415);
        assert_eq!(AdminDenied::Host.answer().0.as_u16(), 421);
        assert_eq!(AdminDenied::Origin.answer().0.as_u16(), 403);

        let named = AdminAuth::new(None)
            .unwrap()
            .with_hosts(&["Admin.Example".into(), "ops.example:8443".into()])
            .bound_to("10.0.0.5:9090".parse().unwrap());
        let host = |h: &str| named.check_source(&request(&[("host", h)]));
        assert_eq!(host("admin.example:9090"), Ok(()));
        assert_eq!(host("ops.example:8443"), Ok(()));
        assert_eq!(host("ops.example:9090"), Err(AdminDenied::Host));
        assert_eq!(host("localhost:9090"), Err(AdminDenied::Host), "not on loopback");
        assert_eq!(host("10.0.0.5:9090"), Ok(()));
        let any = AdminAuth::new(None).unwrap().bound_to("[::]:9090".parse().unwrap());
        let host = |h: &str| any.check_source(&request(&[("host", h)]));
        assert_eq!(host("[2001:db8::1]:9090"), Ok(()));
        assert_eq!(host("192.0.2.1:9090"), Ok(()));
        assert_eq!(host("rebound.example:9090"), Err(AdminDenied::Host));
    }

    #[test]
    fn secrets_are_never_shown_and_short_ones_refused() {
        assert!(!format!("{:?}", auth()).contains(SECRET));
        assert_eq!(
            WebhookAuth::new("Authorization", vec![Secret::new("short")]).unwrap_err(),
            AuthConfigError::TooShort(5)
        );
        assert!(WebhookAuth::new("bad header", vec![]).is_err());
    }
}
