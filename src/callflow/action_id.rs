//! The id phonetree puts on every reply that waits, which 8x8 echoes in the next webhook, and its
//! MAC.
//!
//! The engine stays pure and keyless: it issues the unsigned id (`pt.MACHINE.NODE.SEQ.VERSION`).
//! The node signs every reply it sends with `sign` (the key passed in as data) just before the
//! reply is encoded, and checks an echoed id with `verify` before it lets the id decide anything.
//! A signed id is `pt.MACHINE.NODE.SEQ.VERSION.EXPIRES.MAC`: `EXPIRES` is when the id stops
//! being honoured (seconds since the epoch, decimal), and the MAC is HMAC-SHA256 over what the id
//! says, its expiry and the session it was issued on, truncated to `ACTION_MAC_BYTES` and written
//! in base64url, so an id is valid on its own session only, until its expiry, and nobody without
//! the key can make one or move its expiry. The node picks the expiry (see
//! `node::calls::ACTION_ID_LIFETIME_MAX`); `verify` is given the time, so this module reads no
//! clock. An id signed before ids carried an expiry (`pt.MACHINE.NODE.SEQ.VERSION.MAC`) is
//! refused like a forged one: its MAC was made under another domain and covers no expiry.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use hmac::{KeyInit, Mac};
use sha2::Digest;
use subtle::ConstantTimeEq;

use super::{Callflow, ID_BYTES_MAX};
use crate::secret::Secret;

/// Bytes of the MAC an id carries: 96 bits, far beyond what guessing over a phone line reaches,
/// and short enough (16 base64url characters) to keep an id within `ID_BYTES_MAX`.
pub const ACTION_MAC_BYTES: usize = 12;
/// Characters of the MAC in an id (base64url without padding).
const ACTION_MAC_CHARS: usize = ACTION_MAC_BYTES.div_ceil(3) * 4 - (3 - ACTION_MAC_BYTES % 3) % 3;
/// Characters of a version's short form (`Version::short`).
const VERSION_CHARS: usize = 12;
/// Digits of the longest `seq` (a `u32`).
const SEQ_DIGITS_MAX: usize = 10;
/// Digits of the latest expiry an id may carry (seconds since the epoch: 10 digits last until the
/// year 2286).
const EXPIRES_DIGITS_MAX: usize = 10;
/// Longest machine name plus node name: what a signed id leaves for the names within
/// `ID_BYTES_MAX` (`pt.` and five dots, the longest seq, the version, the expiry, the MAC).
pub const ACTION_ID_NAMES_CHARS_MAX: usize =
    ID_BYTES_MAX - "pt.".len() - 5 - SEQ_DIGITS_MAX - VERSION_CHARS - EXPIRES_DIGITS_MAX - ACTION_MAC_CHARS;
/// Shortest `--action-key` accepted: anything shorter can be guessed.
pub const ACTION_KEY_CHARS_MIN: usize = 16;
/// What the MAC input starts with, so that no other HMAC phonetree computes is ever a valid one.
/// (v2: the MAC covers the expiry; no v1 MAC, made without one, is ever a valid v2 MAC.)
const MAC_DOMAIN: &[u8] = b"phonetree clientActionId v2";

type HmacSha256 = hmac::Hmac<sha2::Sha256>;

/// The id phonetree puts on every reply that waits: `pt.MACHINE.NODE.SEQ.VERSION`.
/// 8x8 echoes it in the next webhook, so a call can be located without stored state and a webhook
/// answering an older prompt is told apart from one answering the current prompt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientActionId {
    pub machine: String,
    pub node: String,
    pub seq: u32,
    /// The machine version's short hex form.
    pub version: String,
}

/// The key ids are signed with: 32 bytes, never shown, kept with the HMAC state keyed with them
/// (the key's two blocks hashed once, not at every id signed or checked).
#[derive(Clone)]
pub struct ActionKey([u8; 32], HmacSha256);

impl PartialEq for ActionKey {
    fn eq(&self, other: &ActionKey) -> bool {
        self.0 == other.0
    }
}

impl Eq for ActionKey {}

impl ActionKey {
    /// A key of 32 random bytes (generated once per store and kept there).
    pub fn new(bytes: [u8; 32]) -> ActionKey {
        // HMAC takes keys of any length; a 32-byte key is always accepted.
        let keyed = <HmacSha256 as KeyInit>::new_from_slice(&bytes).expect("hmac takes any key length");
        ActionKey(bytes, keyed)
    }

    /// The key an operator gave (`--action-key`): the SHA-256 of its text, so any text of at least
    /// `ACTION_KEY_CHARS_MIN` characters makes a full-length key.
    pub fn from_secret(secret: &Secret) -> Result<ActionKey, ActionKeyTooShort> {
        if secret.len() < ACTION_KEY_CHARS_MIN {
            return Err(ActionKeyTooShort(secret.len()));
        }
        Ok(ActionKey::new(sha2::Sha256::digest(secret.expose().as_bytes()).into()))
    }

    fn mac(&self, session: &str, issued: Issued, unsigned: &str, expires: &str) -> [u8; ACTION_MAC_BYTES] {
        let mut mac = self.1.clone();
        for part in [MAC_DOMAIN, session.as_bytes(), &[issued as u8], unsigned.as_bytes(), expires.as_bytes()]
        {
            mac.update(part);
            mac.update(&[0]);
        }
        let full = mac.finalize().into_bytes();
        let mut out = [0; ACTION_MAC_BYTES];
        out.copy_from_slice(&full[..ACTION_MAC_BYTES]);
        out
    }
}

impl fmt::Debug for ActionKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("ActionKey(***)")
    }
}

/// An `--action-key` too short to be a key.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error(
    "the action key is {0} characters; use at least {ACTION_KEY_CHARS_MIN} (e.g. `openssl rand -hex 32`)"
)]
pub struct ActionKeyTooShort(pub usize);

/// Who picked the machine of the call an id was issued on; the MAC covers it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub enum Issued {
    /// The number the call is on (`Registry::bind`): a resumed call must be on that number's
    /// machine still.
    Answered = b'a',
    /// An outbound call (placed by this node, which named the machine): the id's machine is the
    /// call's, whatever the number.
    Placed = b'p',
}

/// Why an echoed id is not honoured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum Refused {
    #[error("clientActionId is not one of phonetree's")]
    Malformed,
    #[error("clientActionId carries no MAC (issued before ids were signed, or forged)")]
    Unsigned,
    #[error("clientActionId's MAC does not match (tampered, forged, another session, or another key)")]
    BadMac,
    #[error("clientActionId carries no expiry (signed before ids expired, or forged)")]
    NoExpiry,
    #[error("clientActionId has expired (its call's session is closed or deleted by now)")]
    Expired,
}

impl ClientActionId {
    /// What an id says, signed or not; the MAC (if any) is not checked: `verify` does that.
    pub fn parse(s: &str) -> Option<ClientActionId> {
        Self::split(s).map(|(id, _)| id)
    }

    /// The id and what follows it: nothing (an unsigned id), a MAC alone (an id signed before
    /// ids expired), or an expiry and a MAC.
    fn split(s: &str) -> Option<(ClientActionId, Vec<&str>)> {
        let mut parts = s.split('.');
        if parts.next()? != "pt" {
            return None;
        }
        let (machine, node, seq, version) = (parts.next()?, parts.next()?, parts.next()?, parts.next()?);
        let rest: Vec<&str> = parts.collect();
        if rest.len() > 2 || machine.is_empty() || node.is_empty() {
            return None;
        }
        let id = ClientActionId {
            machine: machine.to_string(),
            node: node.to_string(),
            seq: seq.parse().ok()?,
            version: version.to_string(),
        };
        Some((id, rest))
    }

    /// The signed id for a reply on `session`, honoured until `expires_secs` (seconds since the
    /// epoch).
    pub fn signed(&self, key: &ActionKey, session: &str, issued: Issued, expires_secs: u64) -> String {
        let unsigned = self.to_string();
        let expires = expires_secs.to_string();
        let mac = URL_SAFE_NO_PAD.encode(key.mac(session, issued, &unsigned, &expires));
        format!("{unsigned}.{expires}.{mac}")
    }

    /// The id `s` says, if its MAC is `key`'s for `session` and it has not expired at `now_secs`
    /// (seconds since the epoch: an id expires at its `EXPIRES` second, so one signed at second
    /// `t` to live `n` seconds is refused once `n` whole seconds have passed), and who picked its
    /// machine.
    pub fn verify(
        s: &str,
        key: &ActionKey,
        session: &str,
        now_secs: u64,
    ) -> Result<(ClientActionId, Issued), Refused> {
        if s.len() > ID_BYTES_MAX {
            return Err(Refused::Malformed);
        }
        let (id, rest) = Self::split(s).ok_or(Refused::Malformed)?;
        let (expires, mac) = match rest.as_slice() {
            [] => return Err(Refused::Unsigned),
            [_] => return Err(Refused::NoExpiry),
            [expires, mac] => (*expires, *mac),
            _ => return Err(Refused::Malformed),
        };
        let got = URL_SAFE_NO_PAD.decode(mac).map_err(|_| Refused::BadMac)?;
        // The id as phonetree would have written it: a seq of `007` is not the seq `7` signed,
        // nor an expiry of `+17` or `017` the expiry `17`.
        let unsigned = id.to_string();
        let expires_secs: u64 = expires.parse().map_err(|_| Refused::BadMac)?;
        if got.len() != ACTION_MAC_BYTES
            || !s.starts_with(&format!("{unsigned}.{expires_secs}."))
            || expires.len() > EXPIRES_DIGITS_MAX
        {
            return Err(Refused::BadMac);
        }
        for issued in [Issued::Answered, Issued::Placed] {
            if bool::from(key.mac(session, issued, &unsigned, expires).ct_eq(&got)) {
                // Checked once the MAC is known to be the key's: an expiry nobody signed is a
                // forgery, not an expired id.
                return match now_secs < expires_secs {
                    true => Ok((id, issued)),
                    false => Err(Refused::Expired),
                };
            }
        }
        Err(Refused::BadMac)
    }
}

/// Signs the id a reply carries (the engine's unsigned one) for `session`, honoured until
/// `expires_secs`; a reply without one is left as it is.
pub fn sign(flow: &mut Callflow, key: &ActionKey, session: &str, issued: Issued, expires_secs: u64) {
    if let Some(id) = flow.client_action_id.as_deref().and_then(ClientActionId::parse) {
        flow.client_action_id = Some(id.signed(key, session, issued, expires_secs));
    }
}

impl fmt::Display for ClientActionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "pt.{}.{}.{}.{}", self.machine, self.node, self.seq, self.version)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> ActionKey {
        ActionKey::new([b; 32])
    }

    /// When the ids of these tests expire, and a time before.
    const EXPIRES: u64 = 1_800_003_600;
    const NOW: u64 = 1_800_000_000;

    fn id() -> ClientActionId {
        ClientActionId {
            machine: "bank".into(),
            node: "account".into(),
            seq: 3,
            version: "0123456789ab".into(),
        }
    }

    #[test]
    fn a_signed_id_verifies_on_its_session_with_its_key_only() {
        let s = id().signed(&key(1), "s-1", Issued::Answered, EXPIRES);
        assert!(s.starts_with("pt.bank.account.3.0123456789ab.1800003600."), "{s}");
        assert_eq!(s.len(), "pt.bank.account.3.0123456789ab.1800003600.".len() + ACTION_MAC_CHARS);
        assert_eq!(ClientActionId::verify(&s, &key(1), "s-1", NOW), Ok((id(), Issued::Answered)));
        assert_eq!(ClientActionId::parse(&s), Some(id()));
        assert_eq!(ClientActionId::verify(&s, &key(2), "s-1", NOW), Err(Refused::BadMac));
        assert_eq!(ClientActionId::verify(&s, &key(1), "s-2", NOW), Err(Refused::BadMac));
        let placed = id().signed(&key(1), "s-1", Issued::Placed, EXPIRES);
        assert_ne!(placed, s);
        assert_eq!(ClientActionId::verify(&placed, &key(1), "s-1", NOW), Ok((id(), Issued::Placed)));
    }

    #[test]
    fn an_id_is_honoured_until_its_expiry_which_its_mac_covers() {
        let k = key(4);
        let s = id().signed(&k, "s", Issued::Answered, EXPIRES);
        assert_eq!(ClientActionId::verify(&s, &k, "s", EXPIRES - 1), Ok((id(), Issued::Answered)));
        assert_eq!(ClientActionId::verify(&s, &k, "s", EXPIRES), Err(Refused::Expired));
        assert_eq!(ClientActionId::verify(&s, &k, "s", u64::MAX), Err(Refused::Expired));
        // A captured id whose expiry is moved later (or written another way) is a forgery.
        for moved in ["1800007200", "9999999999", "01800003600", "+1800003600", "18446744073709551615"] {
            let forged = s.replace(".1800003600.", &format!(".{moved}."));
            assert_eq!(ClientActionId::verify(&forged, &k, "s", NOW), Err(Refused::BadMac), "{forged}");
        }
        // An id signed before ids expired (`...VERSION.MAC`, no expiry): refused like a forged one.
        let mac = s.rsplit('.').next().unwrap();
        let old = format!("pt.bank.account.3.0123456789ab.{mac}");
        assert_eq!(ClientActionId::verify(&old, &k, "s", NOW), Err(Refused::NoExpiry));
        assert_eq!(ClientActionId::parse(&old), Some(id()));
    }

    #[test]
    fn tampered_unsigned_and_foreign_ids_are_refused() {
        let k = key(7);
        let s = id().signed(&k, "s", Issued::Answered, EXPIRES);
        let mac = s.rsplit('.').next().unwrap();
        for forged in [
            s.replace(".3.", ".4."),
            s.replace(".3.", ".03."),
            s.replace("account", "transfer"),
            s.replace("bank", "shop"),
            s.replace("0123456789ab", "0123456789ac"),
            format!(
                "pt.bank.account.3.0123456789ab.1800003600.{}",
                mac.replace(&mac[..1], if &mac[..1] == "A" { "B" } else { "A" })
            ),
            format!("{s}A"),
            s[..s.len() - 1].to_string(),
            format!("pt.bank.account.3.0123456789ab.1800003600.{}", "A".repeat(ACTION_MAC_CHARS)),
        ] {
            assert_eq!(ClientActionId::verify(&forged, &k, "s", NOW), Err(Refused::BadMac), "{forged}");
        }
        assert_eq!(ClientActionId::verify(&id().to_string(), &k, "s", NOW), Err(Refused::Unsigned));
        assert_eq!(ClientActionId::verify("pt.bank", &k, "s", NOW), Err(Refused::Malformed));
        assert_eq!(
            ClientActionId::verify(&"x".repeat(ID_BYTES_MAX + 1), &k, "s", NOW),
            Err(Refused::Malformed)
        );
        assert_eq!(ClientActionId::verify(&format!("{s}.x"), &k, "s", NOW), Err(Refused::Malformed));
    }

    #[test]
    fn the_longest_names_fit_in_an_id() {
        let long = ClientActionId {
            machine: "m".repeat(ACTION_ID_NAMES_CHARS_MAX / 2),
            node: "n".repeat(ACTION_ID_NAMES_CHARS_MAX - ACTION_ID_NAMES_CHARS_MAX / 2),
            seq: u32::MAX,
            version: "0".repeat(VERSION_CHARS),
        };
        assert_eq!(long.signed(&key(0), "s", Issued::Answered, 9_999_999_999).len(), ID_BYTES_MAX);
    }

    #[test]
    fn operator_keys_are_long_enough_and_never_shown() {
        assert_eq!(ActionKey::from_secret(&Secret::new("short")), Err(ActionKeyTooShort(5)));
        let k = ActionKey::from_secret(&Secret::new("0123456789abcdef0123")).unwrap();
        assert_eq!(format!("{k:?}"), "ActionKey(***)");
        assert_eq!(k, ActionKey::from_secret(&Secret::new("0123456789abcdef0123\n")).unwrap());
    }

    #[test]
    fn signing_a_reply_replaces_its_id() {
        let mut flow = Callflow { client_action_id: Some(id().to_string()), actions: vec![] };
        sign(&mut flow, &key(3), "s", Issued::Answered, EXPIRES);
        let signed = flow.client_action_id.clone().unwrap();
        assert_eq!(ClientActionId::verify(&signed, &key(3), "s", NOW), Ok((id(), Issued::Answered)));
        let mut none = Callflow::hangup();
        sign(&mut none, &key(3), "s", Issued::Answered, EXPIRES);
        assert_eq!(none.client_action_id, None);
    }
}
