//! 8x8's speech-profiles API (the Voice Profile API): the voice profiles a sub-account may use
//! (`GET /api/v1/subaccounts/{sub}/speech-profiles`), for `phonetree voices`.

use serde::Deserialize;

use super::outbound::ApiConfig;
use super::webhooks_api::{Ask, WebhooksApiError, request};

/// The name of the API in errors.
const SPEECH_PROFILES_API: &str = "speech-profiles API";
/// Most profiles taken from one answer (8x8 lists a few hundred; `machine::voices` reads at most
/// as many back).
const PROFILES_MAX: usize = crate::machine::voices::VOICES_MAX;

/// One voice profile as 8x8 lists it.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct SpeechProfile {
    /// The name a callflow's `voiceProfile` takes (`en-US-Standard-A`).
    pub speech_profile_code: String,
    pub locale_code: Option<String>,
    pub locale_description: Option<String>,
    pub gender: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Listed {
    #[serde(default)]
    speech_profiles: Vec<SpeechProfile>,
}

/// The sub-account's speech profiles.
pub async fn speech_profiles(
    http: &reqwest::Client,
    api: &ApiConfig,
) -> Result<Vec<SpeechProfile>, WebhooksApiError> {
    let what = "the list of speech profiles";
    let ask =
        Ask { api: SPEECH_PROFILES_API, method: reqwest::Method::GET, path: "speech-profiles".into(), what };
    let body = request(http, api, ask, None, None).await?;
    let refused = |answer: String| WebhooksApiError::Refused {
        api: SPEECH_PROFILES_API,
        what: what.into(),
        status: 200,
        answer,
    };
    let listed: Listed =
        serde_json::from_slice(&body).map_err(|e| refused(format!("not the documented JSON ({e})")))?;
    if listed.speech_profiles.len() > PROFILES_MAX {
        return Err(refused(format!(
            "{} profiles; phonetree takes at most {PROFILES_MAX}",
            listed.speech_profiles.len()
        )));
    }
    Ok(listed.speech_profiles)
}
