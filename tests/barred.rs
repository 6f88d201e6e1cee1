//! The barred ranges (`src/callflow/barred.toml`): every range bars a number inside it with its own
//! reason and leaves its neighbours alone, the attacker's probe numbers are barred, real numbers
//! next to them stay callable, every entry names its source; and `phonetree call`, allowed every
//! prefix, refuses the probe numbers before anything reaches a stand-in for 8x8.

use crate::common;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::*;
use phonetree::callflow::barred::barred;
use phonetree::node::guard::{CallPolicy, Refused, check_destination, is_e164};
use warp::Filter;

/// One `[[barred]]` entry as the file has it, read here independently of the module.
struct Entry {
    prefix: String,
    reason: String,
    kind: String,
    source: String,
}

fn table_text() -> String {
    std::fs::read_to_string(repo().join("src/callflow/barred.toml")).unwrap()
}

fn table() -> (BTreeMap<String, String>, Vec<Entry>) {
    let doc: toml::Table = toml::from_str(&table_text()).unwrap();
    let sources = doc["sources"]
        .as_table()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_string()))
        .collect();
    let field = |e: &toml::Value, f: &str| e.get(f).and_then(|v| v.as_str()).unwrap_or_default().to_string();
    let entries = doc["barred"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Entry {
            prefix: field(e, "prefix"),
            reason: field(e, "reason"),
            kind: field(e, "kind"),
            source: field(e, "source"),
        })
        .collect();
    (sources, entries)
}

/// `prefix` filled with `fill` to `digits` digits after the `+`.
fn padded(prefix: &str, fill: char, digits: usize) -> String {
    let mut n = prefix.to_string();
    while n.len() <= digits {
        n.push(fill);
    }
    n
}

fn every_prefix() -> CallPolicy {
    CallPolicy { allow_prefixes: vec!["+".into()], ..CallPolicy::default() }.checked().unwrap()
}

#[test]
fn every_entry_has_a_prefix_a_reason_a_kind_and_a_source_with_its_address() {
    let (sources, entries) = table();
    assert!(entries.len() > 100, "{} entries", entries.len());
    for (key, title) in &sources {
        assert!(title.contains("https://"), "source `{key}` gives no address: {title}");
    }
    let mut prefixes = BTreeSet::new();
    let mut reasons = BTreeSet::new();
    let mut used = BTreeSet::new();
    for e in &entries {
        let digits = e.prefix.strip_prefix('+').unwrap_or_else(|| panic!("`{}` has no +", e.prefix));
        assert!(
            !digits.is_empty() && digits.len() <= 15 && digits.bytes().all(|b| b.is_ascii_digit()),
            "{}",
            e.prefix
        );
        assert!(!e.reason.trim().is_empty(), "{}: no reason", e.prefix);
        assert!(
            ["emergency", "premium", "fraud", "international"].contains(&e.kind.as_str()),
            "{}",
            e.prefix
        );
        assert!(sources.contains_key(&e.source), "{}: source `{}` is not in [sources]", e.prefix, e.source);
        assert!(prefixes.insert(e.prefix.clone()), "{} is listed twice", e.prefix);
        // One reason per range: the reason says which range refused a number.
        assert!(
            reasons.insert(e.reason.clone()),
            "{}: reason `{}` is another entry's too",
            e.prefix,
            e.reason
        );
        used.insert(e.source.clone());
    }
    let unused: Vec<_> = sources.keys().filter(|k| !used.contains(*k)).collect();
    assert!(unused.is_empty(), "sources no entry cites: {unused:?}");
}

/// Each range bars numbers inside it, at every length the guard lets through, with its own reason:
/// no other entry shadows it. And the guard, allowed every prefix, refuses them.
#[test]
fn every_range_bars_the_numbers_inside_it_with_its_own_reason() {
    let (_, entries) = table();
    let all = every_prefix();
    for e in &entries {
        for (fill, digits) in [('5', 8), ('5', 11), ('2', 15), ('0', 12)] {
            let n = padded(&e.prefix, fill, digits.max(e.prefix.len()));
            if !is_e164(&n) {
                continue;
            }
            assert_eq!(barred(&n), Some(e.reason.as_str()), "{n} (in {})", e.prefix);
            assert_eq!(
                check_destination(&all, &n),
                Err(Refused::Barred { to: n.clone(), why: barred(&n).unwrap() }),
                "{n}"
            );
        }
    }
}

/// The numbers one digit away from each prefix are not barred by it (another range may bar them,
/// with its own reason).
#[test]
fn the_neighbours_of_every_range_are_not_barred_by_it() {
    let (_, entries) = table();
    for e in &entries {
        let (head, last) = e.prefix.split_at(e.prefix.len() - 1);
        for d in ('0'..='9').filter(|d| !last.starts_with(*d)) {
            let n = padded(&format!("{head}{d}"), '5', 11);
            assert_ne!(barred(&n), Some(e.reason.as_str()), "{n} is next to {}, not in it", e.prefix);
        }
    }
}

/// The forms the attacker's probe (issue 21, finding 5 and 2) got through to the stand-in 8x8.
const PROBE: &[(&str, &str)] = &[
    // Emergency: Singapore (every bundled machine is +65), 112 in national forms, NZ, Mexico.
    ("+6599912345", "Singapore emergency (999)"),
    ("+6599500000", "Singapore emergency (995)"),
    ("+6511200000", "Singapore emergency (112)"),
    ("+4411200000", "UK emergency (112)"),
    ("+4499900000", "UK emergency (999)"),
    ("+4911200000", "German emergency (112)"),
    ("+4911000000", "German emergency (110, police)"),
    ("+3911200000", "Italian emergency (112)"),
    ("+3411200000", "Spanish emergency (112)"),
    ("+3111200000", "Dutch emergency (112)"),
    ("+6111200000", "Australian emergency (112)"),
    ("+6100000000", "Australian emergency (000)"),
    ("+85211200000", "Hong Kong emergency (112)"),
    ("+85299900000", "Hong Kong emergency (999)"),
    ("+6411100000", "New Zealand emergency (111)"),
    ("+5291100000000", "Mexican emergency (911)"),
    ("+19115550100", "North American emergency (911)"),
    ("+11120000000", "no NANP number (no area code starts 1; 112 keyed after +1)"),
    ("+8111000000", "Japanese emergency (110)"),
    ("+6311700000", "Philippine emergency (117)"),
    ("+9110000000000", "Indian emergency (100, police)"),
    ("+8612000000000", "Chinese emergency (120, ambulance)"),
    // Premium-rate, 0900 ranges.
    ("+19005550100", "a North American premium-rate (900) number"),
    ("+449012345678", "a UK premium-rate (09) number"),
    ("+499001234567", "a German premium-rate (0900) number"),
    ("+31900123456", "a Dutch premium-rate (0900) number"),
    ("+31906123456", "a Dutch premium-rate (0906) number"),
    ("+41900123456", "a Swiss premium-rate (0900) number"),
    ("+6490012345", "a New Zealand premium-rate (0900) number"),
    ("+5290012345678", "a Mexican premium-rate (900) number"),
    ("+6519001234567", "a Singapore premium-rate (1900) number"),
    ("+4911833000", "a German directory enquiries (118xy) number, premium-rate"),
    // Caribbean NANP destinations known for toll fraud.
    ("+18095550100", "a Dominican Republic number (NANP 809), a one-ring scam destination"),
    ("+18765550100", "a Jamaica number (NANP 876), a one-ring scam destination"),
    ("+12845550100", "a British Virgin Islands number (NANP 284), a one-ring scam destination"),
    ("+16495550100", "a Turks and Caicos number (NANP 649), a one-ring scam destination"),
    ("+14735550100", "a Grenada number (NANP 473), a one-ring scam destination"),
    // International codes with no country behind them.
    ("+881000000000", "a global mobile satellite system (+881) number"),
    ("+80012345678", "a Universal International Freephone (+800) number"),
    ("+88812345678", "a telecommunications for disaster relief (+888) number"),
    ("+87812345678", "a Universal Personal Telecommunication (+878) number"),
    ("+99112345678", "an international public correspondence trial (+991) number"),
    ("+87077311234", "an Inmarsat satellite (+870) number"),
    ("+88212345678", "an international network (+882) number"),
    ("+88312345678", "an international network (+883) number"),
    ("+97912345678", "an international premium-rate (+979) number"),
    ("+80812345678", "an international shared-cost (+808) number"),
];

#[test]
fn the_probes_numbers_are_barred() {
    let all = every_prefix();
    for (n, why) in PROBE {
        assert!(is_e164(n), "{n} is no number the guard would see");
        assert_eq!(barred(n), Some(*why), "{n}");
        assert_eq!(check_destination(&all, n), Err(Refused::Barred { to: n.to_string(), why }), "{n}");
    }
}

/// Real numbers (valid in libphonenumber's ranges) beside barred forms: they stay callable. Some
/// are where an emergency code, keyed after the country code, is a subscriber's number, which is
/// why those codes are not barred (the table's header lists them).
const CALLABLE: &[&str] = &[
    "+6598888888", // Singapore mobile, beside 999/995
    "+6598012345", // Singapore mobile
    "+6568888888", // the bundled machines' numbers
    "+6561115777",
    "+6531589338",
    "+6591178965",
    "+441184960000", // Reading, 0118: the UK's 118 directory codes cannot be dialled from abroad
    "+442079460000", // London
    "+447911123456", // UK mobile
    "+33153000000",  // Paris 01 53 (France's 15)
    "+33170000000",  // Paris 01 70 (France's 17)
    "+33180000000",  // Paris 01 80 (France's 18)
    "+33112345678",  // Paris 01 12 (112 after +33)
    "+911123456789", // Delhi 011 2 (India's 112)
    "+919812345678", // Indian mobile
    "+551930000000", // Campinas (19) 3 (Brazil's 193)
    "+5519912345678", // Campinas mobile (Brazil's 199)
    "+5511912345678", // São Paulo mobile
    "+81118111234",  // Sapporo 011-811 (Japan's 118)
    "+81312345678",  // Tokyo
    "+639111234567", // Philippine mobile 0911 (the Philippines' 911)
    "+639171234567",
    "+3539996981",    // Kilronan 099 9 (Ireland's 999)
    "+35319999999",   // Dublin
    "+35312345678",   // Dublin 01 2 (Ireland's 112)
    "+31911123456",   // Dutch VoIP 091 (911 after +31)
    "+31101234567",   // Rotterdam 010, beside 0112
    "+31111123456",   // Zierikzee 0111, beside 0112
    "+31201234567",   // Amsterdam
    "+12025550123",   // Washington DC
    "+14165550123",   // Toronto
    "+17875550123",   // Puerto Rico (a US territory: domestic rates)
    "+13405550123",   // US Virgin Islands
    "+18005550100",   // US toll-free
    "+61291234567",   // Sydney
    "+61412345678",   // Australian mobile
    "+6493001234",    // Auckland
    "+64211234567",   // New Zealand mobile
    "+85221234567",   // Hong Kong fixed
    "+85291234567",   // Hong Kong mobile
    "+525512345678",  // Mexico City
    "+529991234567",  // Mérida (area code 999)
    "+4930123456",    // Berlin
    "+4915112345678", // German mobile
    "+390612345678",  // Rome
    "+393123456789",  // Italian mobile
    "+34912345678",   // Madrid
    "+34612345678",   // Spanish mobile
    "+8613812345678", // Chinese mobile
    "+861012345678",  // Beijing
    "+41441234567",   // Zürich
    "+4721234567",    // Oslo
    "+4532123456",    // Copenhagen
    "+48221234567",   // Warsaw
    "+60321234567",   // Kuala Lumpur
    "+601123456789",  // Malaysian mobile 011 2 (Malaysia's 112)
    "+97142345678",   // Dubai
];

#[test]
fn real_numbers_beside_barred_forms_stay_callable() {
    let all = every_prefix();
    for n in CALLABLE {
        assert!(is_e164(n), "{n}");
        assert_eq!(barred(n), None, "{n}");
        assert_eq!(check_destination(&all, n), Ok(()), "{n}");
    }
}

/// Every country where the bundled machines (+65) or 8x8 operate has its emergency forms barred,
/// except where each form is a subscriber's number (the table's header says which and why).
#[test]
fn every_country_where_phonetree_calls_has_its_emergency_codes_barred() {
    let (_, entries) = table();
    let emergency: Vec<&str> =
        entries.iter().filter(|e| e.kind == "emergency").map(|e| e.prefix.as_str()).collect();
    for cc in [
        "+1", "+44", "+65", "+61", "+64", "+81", "+63", "+91", "+852", "+52", "+55", "+49", "+39", "+34",
        "+31", "+86",
    ] {
        assert!(emergency.iter().any(|p| p.starts_with(cc)), "no emergency form for {cc}");
    }
    let text = table_text();
    for (cc, why) in [
        ("+33 15 / 17 / 18 / 112", "Paris"),
        ("+353 999", "Kilronan"),
        ("+353 112", "Dublin"),
        ("+91 112", "Delhi"),
    ] {
        assert!(text.contains(cc) && text.contains(why), "the header does not say why {cc} is callable");
    }
}

/// A stand-in for 8x8's Send Callflow API that counts what reaches it and answers "created".
async fn stand_in() -> (String, Arc<AtomicUsize>) {
    let hits = Arc::new(AtomicUsize::new(0));
    let count = hits.clone();
    let route = warp::any().and(warp::body::bytes()).map(move |_body: warp::hyper::body::Bytes| {
        count.fetch_add(1, Ordering::SeqCst);
        warp::reply::json(&serde_json::json!({"sessionId": "8x8-session-b", "sessionStatus": "CREATED",
            "callFlowRequestId": "89b545a5-0676-11ee-8100-d500c0d203fc", "statusCode": 1, "statusMessage": "Created"}))
    });
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(warp::serve(route).incoming(listener).run());
    (base, hits)
}

/// `phonetree call --to NUMBER` (the real binary, every prefix allowed); (exit code, stdout, stderr).
async fn call(base: &str, t: &tempfile::TempDir, to: &str) -> (i32, String, String) {
    let (base, to) = (base.to_string(), to.to_string());
    let data = t.path().join("data");
    let machines = machines_dir(t.path());
    tokio::task::spawn_blocking(move || {
        let out = std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
            .args(["call", "--machine", "abc_restaurant", "--to", &to])
            .arg("--data")
            .arg(&data)
            .arg("--machines")
            .arg(&machines)
            .env("PHONETREE_8X8_BASE_URL", &base)
            .env("PHONETREE_8X8_SUBACCOUNT", "acct_x")
            .env("PHONETREE_8X8_API_KEY", "key-123")
            .env("PHONETREE_CALL_ALLOW_PREFIX", "+")
            .env("PHONETREE_LOG", "warn")
            .output()
            .unwrap();
        let text = |b: Vec<u8>| String::from_utf8(b).unwrap();
        (out.status.code().unwrap_or(-1), text(out.stdout), text(out.stderr))
    })
    .await
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn phonetree_call_refuses_the_probes_numbers_before_8x8_sees_them() {
    let (base, hits) = stand_in().await;
    let t = tempfile::tempdir().unwrap();
    for (n, why) in [
        ("+6599912345", "Singapore emergency (999)"),
        ("+6599500000", "Singapore emergency (995)"),
        ("+4911200000", "German emergency (112)"),
        ("+6411100000", "New Zealand emergency (111)"),
        ("+5291100000000", "Mexican emergency (911)"),
        ("+18765550100", "NANP 876"),
        ("+80012345678", "+800"),
        ("+31900123456", "0900"),
    ] {
        let (code, stdout, stderr) = call(&base, &t, n).await;
        assert_eq!((code, stdout.as_str()), (1, ""), "{n}: {stderr}");
        assert!(stderr.contains(why) && stderr.contains("phonetree never calls it"), "{n}: {stderr}");
        assert_eq!(hits.load(Ordering::SeqCst), 0, "{n} reached 8x8");
    }
    // The same call to a callable number reaches the stand-in: the refusals above were the guard's.
    let (code, stdout, stderr) = call(&base, &t, "+6598888888").await;
    assert_eq!((code, stdout.as_str()), (0, "8x8-session-b\n"), "{stderr}");
    assert_eq!(hits.load(Ordering::SeqCst), 1);
}
