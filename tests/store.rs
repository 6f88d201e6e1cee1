//! The store conformance suite: every promise of the `Store` trait, run against every backend in
//! `common::backends` (a new backend is added there and must pass all of these unchanged).

use crate::common;

use std::sync::Arc;

use common::backends::{Backend, backends};
use phonetree::callflow::{Leg, SessionSummary};
use phonetree::engine::script::Method;
use phonetree::engine::transcript::{Asked, ENTRIES_MAX, Entry, Happened, Resumption, Said, Variant};
use phonetree::engine::{Answer, CallState, Event, Request};
use phonetree::machine::Version;
use phonetree::store::{
    Cancelled, Claim, Commit, Committed, CopyError, Exported, Journaled, KeyCopied, REPLIES_KEPT, Revision,
    SCAN_PAGE_MAX, Scheduled, ScheduledState, Store, StoredMachine, StoredSummary,
};

/// A call waiting at abc_restaurant's main menu, under `session`.
fn waiting(session: &str) -> CallState {
    let m = common::bundled("abc_restaurant");
    let mut call = common::inbound("+6591178965", "+6568888888");
    call.session_id = session.into();
    phonetree::engine::step(&m, &CallState::new(&m, call, 1), &Event::CallStarted, 1).unwrap().state
}

/// The same call one key later.
fn pressed(state: &CallState) -> CallState {
    let m = common::bundled("abc_restaurant");
    phonetree::engine::step(&m, state, &Event::Digits("1".into()), 2).unwrap().state
}

fn commit<'a>(
    session: &'a str,
    expected: Option<&'a Revision>,
    state: &'a CallState,
    reply: Option<(&'a str, &'a [u8])>,
) -> Commit<'a> {
    Commit { session, expected, state, reply, entries: &[], schedule: None, summary: None, wait: None }
}

/// A transcript entry numbered `i`.
fn entry(i: u64) -> Entry {
    Entry {
        at_ms: i,
        event: Happened::Keys { keys: i.to_string() },
        left: "main_menu".into(),
        entered: "orders".into(),
        said: vec![Said { node: "orders".into(), action: "say".into(), text: format!("said {i}") }],
        requests: vec![Asked {
            node: "lookup".into(),
            method: "GET".into(),
            url: "http://127.0.0.1:1/orders".into(),
            status: Some(200),
            failure: None,
            body: "{\"status\":\"shipped\"}".into(),
            cut: false,
        }],
        // Every other entry names a split's variant (entry format 4): both formats round-trip.
        variants: if i % 2 == 1 {
            vec![Variant { node: "greeting".into(), variant: format!("v{i}") }]
        } else {
            vec![]
        },
        // Every third entry went on after a resume offer (entry format 5), with or without a
        // variant before it.
        resume: (i % 3 == 2).then(|| Resumption::WentOn { vars: [("account".into(), i.to_string())].into() }),
    }
}

/// Runs `case` on a fresh store of every backend, in a folder of its own.
async fn each<F, Fut>(case: F)
where
    F: Fn(Backend, Arc<dyn Store>, tempfile::TempDir) -> Fut,
    Fut: Future<Output = ()>,
{
    for backend in backends() {
        let dir = tempfile::tempdir().unwrap();
        let store = (backend.open)(dir.path()).await;
        case(backend, store, dir).await;
    }
}

#[tokio::test]
async fn an_unknown_session_loads_as_nothing() {
    each(|_, store, _| async move {
        let got = store.load("nobody", Some("e1")).await.unwrap();
        assert!(got.session.is_none() && got.replied.is_none());
    })
    .await;
}

#[tokio::test]
async fn commit_applies_only_at_the_revision_it_was_loaded_at() {
    each(|b, store, _| async move {
        let s0 = waiting("s1");
        assert_eq!(
            store.commit(commit("s1", None, &s0, Some(("e1", b"r1")))).await.unwrap(),
            Committed::Done
        );
        let again = store.commit(commit("s1", None, &s0, Some(("e1x", b"x")))).await.unwrap();
        assert_eq!(again, Committed::Changed, "{}: a second create of one session", b.name);
        let first = store.load("s1", None).await.unwrap().session.unwrap();
        assert_eq!(first.state, s0);
        let s1 = pressed(&s0);
        assert_eq!(
            store.commit(commit("s1", Some(&first.rev), &s1, Some(("e2", b"r2")))).await.unwrap(),
            Committed::Done
        );
        // The revision loaded before that commit is stale now.
        let stale = store.commit(commit("s1", Some(&first.rev), &s0, Some(("e3", b"r3")))).await.unwrap();
        assert_eq!(stale, Committed::Changed, "{}", b.name);
        let now = store.load("s1", Some("e3")).await.unwrap();
        assert_eq!(now.session.unwrap().state, s1, "{}: the loser wrote nothing", b.name);
        assert_eq!(now.replied, None, "{}: nor its reply", b.name);
    })
    .await;
}

#[tokio::test]
async fn concurrent_commits_from_one_revision_apply_once() {
    each(|b, store, _| async move {
        let s0 = waiting("s1");
        assert_eq!(store.commit(commit("s1", None, &s0, None)).await.unwrap(), Committed::Done);
        let rev = store.load("s1", None).await.unwrap().session.unwrap().rev;
        let s1 = pressed(&s0);
        let tries = (0..8).map(|i| {
            let (store, rev, s1) = (store.clone(), rev.clone(), s1.clone());
            tokio::spawn(async move {
                let event = format!("e{i}");
                store.commit(commit("s1", Some(&rev), &s1, Some((&event, b"r")))).await.unwrap()
            })
        });
        let mut done = 0;
        for t in tries.collect::<Vec<_>>() {
            done += usize::from(t.await.unwrap() == Committed::Done);
        }
        assert_eq!(done, 1, "{}", b.name);
    })
    .await;
}

#[tokio::test]
async fn the_reply_journal_answers_duplicates_and_remembers_older_events() {
    each(|b, store, _| async move {
        let mut state = waiting("s1");
        let mut rev = None;
        for i in 0..(REPLIES_KEPT + 3) {
            let (event, body) = (format!("e{i}"), format!("reply {i}"));
            assert_eq!(
                store
                    .commit(commit("s1", rev.as_ref(), &state, Some((&event, body.as_bytes()))))
                    .await
                    .unwrap(),
                Committed::Done
            );
            rev = store.load("s1", None).await.unwrap().session.map(|l| l.rev);
            state.updated_ms += 1;
        }
        let last = REPLIES_KEPT + 2;
        let replied = |e: String| {
            let store = store.clone();
            async move { store.load("s1", Some(&e)).await.unwrap().replied }
        };
        assert_eq!(
            replied(format!("e{last}")).await,
            Some(Journaled::Reply(format!("reply {last}").into_bytes()))
        );
        assert_eq!(replied("e0".into()).await, Some(Journaled::Forgotten), "{}", b.name);
        assert_eq!(replied("e-new".into()).await, None, "{}", b.name);
        // A write without a reply (a summary, an expiry) keeps the journal.
        let l = store.load("s1", None).await.unwrap().session.unwrap();
        assert_eq!(store.commit(commit("s1", Some(&l.rev), &l.state, None)).await.unwrap(), Committed::Done);
        assert_eq!(
            replied(format!("e{last}")).await,
            Some(Journaled::Reply(format!("reply {last}").into_bytes()))
        );
    })
    .await;
}

#[tokio::test]
async fn the_action_key_is_made_once_and_every_node_of_the_store_gets_it() {
    each(|b, store, dir| async move {
        assert_eq!(store.action_key(None).await.unwrap(), None, "{}: no key yet", b.name);
        // Nodes starting at once each bring a fresh key: one is kept, and all of them get it.
        let tries = (1..=8u8).map(|i| {
            let store = store.clone();
            async move { store.action_key(Some([i; 32])).await.unwrap() }
        });
        let got: Vec<_> = futures_join_all(tries).await;
        let kept = got[0].unwrap();
        assert!(got.iter().all(|k| *k == Some(kept)), "{}: {got:?}", b.name);
        assert_eq!(store.action_key(Some([99; 32])).await.unwrap(), Some(kept), "{}", b.name);
        drop(store);
        let store = (b.open)(dir.path()).await;
        assert_eq!(store.action_key(None).await.unwrap(), Some(kept), "{}: durable", b.name);
    })
    .await;
}

/// Runs futures concurrently (on this runtime's threads) and gives their outputs in order.
async fn futures_join_all<F>(futures: impl Iterator<Item = F>) -> Vec<F::Output>
where
    F: Future + Send + 'static,
    F::Output: Send + 'static,
{
    let handles: Vec<_> = futures.map(tokio::spawn).collect();
    let mut out = Vec::with_capacity(handles.len());
    for h in handles {
        out.push(h.await.unwrap());
    }
    out
}

#[tokio::test]
async fn committed_writes_survive_reopening_the_store() {
    each(|b, store, dir| async move {
        let s0 = waiting("s1");
        assert_eq!(
            store.commit(commit("s1", None, &s0, Some(("e1", b"r1")))).await.unwrap(),
            Committed::Done
        );
        store.put_answers("s1", "e2", &[Answer::Failed { reason: "timeout".into() }]).await.unwrap();
        drop(store);
        let store = (b.open)(dir.path()).await;
        let got = store.load("s1", Some("e1")).await.unwrap();
        assert_eq!(got.session.unwrap().state, s0, "{}", b.name);
        assert_eq!(got.replied, Some(Journaled::Reply(b"r1".to_vec())));
        assert_eq!(store.answers("s1", "e2").await.unwrap(), [Answer::Failed { reason: "timeout".into() }]);
        assert_eq!(store.session_count().await.unwrap(), 1);
    })
    .await;
}

#[tokio::test]
async fn each_commit_appends_its_transcript_entry_bounded_durable_and_removed_with_its_session() {
    each(|b, store, dir| async move {
        assert!(store.transcript("s1").await.unwrap().is_empty());
        let mut state = waiting("s1");
        let mut rev = None;
        let entries: Vec<Entry> = (0..ENTRIES_MAX as u64 + 3).map(entry).collect();
        for (i, e) in entries.iter().enumerate() {
            let event = format!("e{i}");
            let c = Commit {
                entries: std::slice::from_ref(e),
                ..commit("s1", rev.as_ref(), &state, Some((&event, b"r")))
            };
            assert_eq!(store.commit(c).await.unwrap(), Committed::Done, "{}", b.name);
            if i == 1 {
                // A commit that does not apply leaves no entry.
                let stale = Commit {
                    entries: std::slice::from_ref(e),
                    ..commit("s1", rev.as_ref(), &state, Some(("x", b"x")))
                };
                assert_eq!(store.commit(stale).await.unwrap(), Committed::Changed);
            }
            rev = store.load("s1", None).await.unwrap().session.map(|l| l.rev);
            state.updated_ms += 1;
        }
        // A commit without an entry (an expiry) keeps the transcript as it is.
        assert_eq!(store.commit(commit("s1", rev.as_ref(), &state, None)).await.unwrap(), Committed::Done);
        drop(store);
        let store = (b.open)(dir.path()).await;
        let got = store.transcript("s1").await.unwrap();
        assert_eq!(
            got,
            entries[..ENTRIES_MAX],
            "{}: the first ENTRIES_MAX, in order, after a reopen",
            b.name
        );
        store.remove_session("s1").await.unwrap();
        assert!(store.transcript("s1").await.unwrap().is_empty(), "{}: removed with its session", b.name);
    })
    .await;
}

#[tokio::test]
async fn script_answers_are_journaled_per_webhook() {
    each(|b, store, _| async move {
        let answers = [
            Answer::Http { status: 200, body: br#"{"ok": true}"#.to_vec() },
            Answer::Failed { reason: "no answer within 2000 ms".into() },
        ];
        assert!(store.answers("s1", "e1").await.unwrap().is_empty());
        store.put_answers("s1", "e1", &answers[..1]).await.unwrap();
        store.put_answers("s1", "e1", &answers).await.unwrap();
        assert_eq!(store.answers("s1", "e1").await.unwrap(), answers, "{}", b.name);
        assert!(store.answers("s1", "e2").await.unwrap().is_empty());
        assert!(store.answers("s10", "e1").await.unwrap().is_empty(), "{}: no prefix confusion", b.name);
    })
    .await;
}

/// A script request is claimed once, durably: the first claim wins; any other finds it held (until
/// the claimant's time) or lapsed (past it; on sled also when an earlier opening of the folder made
/// it, as a process that stopped mid-request did); another rank, event or session is another
/// claim; removing the session takes its claims.
#[tokio::test(flavor = "multi_thread")]
async fn a_script_request_is_claimed_once_and_durably() {
    each(|b, store, dir| async move {
        assert_eq!(store.claim("s1", "e1", 0, 5_000, 1_000).await.unwrap(), Claim::Won, "{}", b.name);
        let held = Claim::Held { until_ms: 5_000 };
        assert_eq!(store.claim("s1", "e1", 0, 9_000, 2_000).await.unwrap(), held, "{}", b.name);
        assert_eq!(store.claim("s1", "e1", 0, 9_000, 5_000).await.unwrap(), Claim::Lapsed, "{}", b.name);
        for (session, event, rank) in [("s1", "e1", 1), ("s1", "e2", 0), ("s10", "e1", 0), ("s", "1e1", 0)] {
            let got = store.claim(session, event, rank, 5_000, 1_000).await.unwrap();
            assert_eq!(got, Claim::Won, "{}: {session}/{event}/{rank}", b.name);
        }
        // Deliveries racing for one request: one wins.
        let racing = futures_join_all((0..8).map(|_| {
            let store = store.clone();
            async move { store.claim("s2", "e1", 0, 5_000, 1_000).await.unwrap() }
        }))
        .await;
        assert_eq!(racing.iter().filter(|c| **c == Claim::Won).count(), 1, "{}: {racing:?}", b.name);
        drop(store);
        let store = (b.open)(dir.path()).await;
        let after = store.claim("s1", "e1", 0, 9_000, 2_000).await.unwrap();
        // Reopened: a sled folder's claims were made by a process that is gone; a database's may
        // be another node's, in flight, until their time.
        let want = if b.name == "sled" { Claim::Lapsed } else { held };
        assert_eq!(after, want, "{}: the claim outlives the store's opening", b.name);
        store.remove_session("s1").await.unwrap();
        assert_eq!(store.claim("s1", "e1", 0, 5_000, 1_000).await.unwrap(), Claim::Won, "{}", b.name);
        assert_ne!(store.claim("s10", "e1", 0, 5_000, 1_000).await.unwrap(), Claim::Won, "{}", b.name);
    })
    .await;
}

/// A database a phonetree of schema 3 left (sessions, replies, answers, no claims) is migrated by
/// this one when it opens: its sessions load as before, and script requests are claimed.
#[tokio::test(flavor = "multi_thread")]
async fn a_schema_3_database_is_migrated_and_claims_script_requests() {
    let dir = tempfile::tempdir().unwrap();
    let Some(url) = common::backends::postgres_url_for(dir.path()).await else { return };
    let client = common::backends::connect(&url).await.unwrap();
    let mut older = String::from(
        "CREATE TABLE phonetree_schema (id INT PRIMARY KEY, version INT NOT NULL);
         INSERT INTO phonetree_schema (id, version) VALUES (1, 3);",
    );
    for step in &phonetree::store::MIGRATIONS[..3] {
        older.push_str(step);
    }
    client.batch_execute(&older).await.unwrap();
    let state = waiting("s1");
    let raw = phonetree::store::encode_session(&state).unwrap();
    client
        .execute(
            "INSERT INTO phonetree_sessions (id, rev, replies, state, updated_ms, closed) VALUES ('s1', 7, 0, $1, 1, false)",
            &[&raw],
        )
        .await
        .unwrap();
    assert_eq!(phonetree::store::migrate(&url).await.unwrap(), phonetree::store::SCHEMA_VERSION);
    const { assert!(phonetree::store::SCHEMA_VERSION > 3) };
    let store = phonetree::store::open(&url, phonetree::store::Durability::Fsync).await.unwrap();
    assert_eq!(store.load("s1", None).await.unwrap().session.unwrap().state, state);
    assert_eq!(store.claim("s1", "e1", 0, 5_000, 1_000).await.unwrap(), Claim::Won);
    assert_eq!(store.claim("s1", "e1", 0, 5_000, 1_000).await.unwrap(), Claim::Held { until_ms: 5_000 });
}

#[tokio::test]
async fn cached_answers_last_their_minutes_then_expire() {
    each(|b, store, _| async move {
        let request = Request {
            node: "lookup".into(),
            method: Method::Get,
            url: "http://127.0.0.1:9/orders/1".into(),
            headers: vec![],
            body: None,
            timeout_ms: 2000,
            cache_minutes: Some(2),
        };
        let answer = Answer::Http { status: 200, body: b"{}".to_vec() };
        store.put_cached(&request, &answer, 1_000).await.unwrap();
        assert_eq!(
            store.cached(&request, 1_000 + 119_999).await.unwrap(),
            Some(answer.clone()),
            "{}",
            b.name
        );
        assert_eq!(store.cached(&request, 1_000 + 120_000).await.unwrap(), None, "{}", b.name);
        let other = Request { url: "http://127.0.0.1:9/orders/2".into(), ..request.clone() };
        assert_eq!(store.cached(&other, 1_000).await.unwrap(), None);
        let uncached = Request { cache_minutes: None, ..other };
        store.put_cached(&uncached, &answer, 1_000).await.unwrap();
        assert_eq!(store.cached(&uncached, 1_000).await.unwrap(), None, "no cache_minutes, no cache");
        assert_eq!(store.expire_cache(1_000 + 120_000).await.unwrap(), 1, "{}", b.name);
        assert_eq!(store.expire_cache(1_000 + 120_000).await.unwrap(), 0);
    })
    .await;
}

/// The summary that ends a call is kept by the commit that closes it, in the same durable
/// write: read back after reopening; a commit that loses its swap leaves the session as it was.
#[tokio::test]
async fn a_commit_keeps_the_summary_it_carries_durably() {
    each(|b, store, dir| async move {
        let open = waiting("s1");
        assert_eq!(store.commit(commit("s1", None, &open, None)).await.unwrap(), Committed::Done);
        let loaded = store.load("s1", None).await.unwrap().session.unwrap();
        let mut closed = pressed(&open);
        closed.closed = true;
        let summary = summary_of("s1", "COMPLETED");
        let stale = Commit { summary: Some((&summary, 41)), ..commit("s1", None, &closed, None) };
        assert_eq!(store.commit(stale).await.unwrap(), Committed::Changed, "{}", b.name);
        let with = Commit { summary: Some((&summary, 42)), ..commit("s1", Some(&loaded.rev), &closed, None) };
        assert_eq!(store.commit(with).await.unwrap(), Committed::Done, "{}", b.name);
        drop(store);
        let store = (b.open)(dir.path()).await;
        assert_eq!(
            store.summary("s1").await.unwrap(),
            Some(StoredSummary { received_ms: 42, summary }),
            "{}",
            b.name
        );
        assert!(store.load("s1", None).await.unwrap().session.unwrap().state.closed, "{}", b.name);
    })
    .await;
}

#[tokio::test]
async fn summaries_and_machines_round_trip() {
    each(|b, store, _| async move {
        let summary = SessionSummary {
            session_id: "s1".into(),
            status: "COMPLETED".into(),
            last_action: Some("HANGUP".into()),
            call_count: Some(1),
            start_time: None,
            end_time: None,
            legs: vec![Leg {
                name: "callA".into(),
                call_id: Some("c".into()),
                direction: None,
                source: None,
                destination: None,
                status: Some("COMPLETED".into()),
                duration_s: Some(16),
            }],
            error_code: Some(-1002),
            error_message: Some("Speech profile invalid".into()),
        };
        store.put_summary(&summary, 77).await.unwrap();
        assert_eq!(
            store.summary("s1").await.unwrap(),
            Some(StoredSummary { received_ms: 77, summary }),
            "{}",
            b.name
        );
        assert_eq!(store.summary("s2").await.unwrap(), None);

        let text = std::fs::read_to_string(common::repo().join("machines/abc_restaurant.toml")).unwrap();
        let version = Version::of_text(&text);
        let m = StoredMachine {
            name: "abc_restaurant".into(),
            file: "abc_restaurant.toml".into(),
            text,
            modules: Vec::new(),
        };
        store.put_machine(version, &m).await.unwrap();
        store.put_machine(version, &m).await.unwrap();
        assert_eq!(store.machine(version).await.unwrap(), Some(m.clone()), "{}", b.name);
        assert_eq!(store.machine(Version([9; 32])).await.unwrap(), None);
        let by_short = store.machine_by_short("abc_restaurant", &version.short()).await.unwrap();
        assert_eq!(by_short, Some((version, m)), "{}", b.name);
        assert_eq!(
            store.machine_by_short("other", &version.short()).await.unwrap(),
            None,
            "names must match"
        );
        assert_eq!(store.machine_by_short("abc_restaurant", "zz").await.unwrap(), None);
    })
    .await;
}

#[tokio::test]
async fn scans_page_through_every_session_in_order_and_removal_takes_everything() {
    each(|b, store, _| async move {
        let mut ids: Vec<String> = (0..10).map(|i| format!("s{i:02}")).collect();
        ids.reverse();
        for id in &ids {
            assert_eq!(store.commit(commit(id, None, &waiting(id), None)).await.unwrap(), Committed::Done);
        }
        ids.sort();
        let mut seen = Vec::new();
        let mut after: Option<String> = None;
        for _ in 0..10 {
            let page = store.scan(after.as_deref(), 3).await.unwrap();
            assert!(page.sessions.len() <= 3);
            for (id, loaded) in page.sessions {
                assert_eq!(loaded.unwrap().state, waiting(&id));
                seen.push(id);
            }
            match page.next {
                Some(n) => after = Some(n),
                None => break,
            }
        }
        assert_eq!(seen, ids, "{}", b.name);
        assert_eq!(store.session_count().await.unwrap(), 10);

        let summary = SessionSummary {
            session_id: "s03".into(),
            status: "COMPLETED".into(),
            last_action: None,
            call_count: None,
            start_time: None,
            end_time: None,
            legs: vec![],
            error_code: None,
            error_message: None,
        };
        store.put_summary(&summary, 1).await.unwrap();
        store.put_answers("s03", "e1", &[Answer::Failed { reason: "x".into() }]).await.unwrap();
        store.remove_session("s03").await.unwrap();
        assert!(store.load("s03", None).await.unwrap().session.is_none(), "{}", b.name);
        assert!(store.summary("s03").await.unwrap().is_none());
        assert!(store.answers("s03", "e1").await.unwrap().is_empty());
        assert_eq!(store.session_count().await.unwrap(), 9);
        store.remove_session("s03").await.unwrap();
        assert_eq!(store.session_count().await.unwrap(), 9, "removing twice is harmless");
        store.probe(5).await.unwrap();
        store.flush().await.unwrap();
    })
    .await;
}

#[tokio::test]
async fn an_event_is_answered_once_from_any_revision() {
    each(|b, store, _| async move {
        let s0 = waiting("s1");
        assert_eq!(store.commit(commit("s1", None, &s0, None)).await.unwrap(), Committed::Done);
        let rev = store.load("s1", None).await.unwrap().session.unwrap().rev;
        let s1 = pressed(&s0);
        // One event delivered several times at once, every delivery loaded at the same revision.
        let tries = (0..4).map(|i| {
            let (store, rev, s1) = (store.clone(), rev.clone(), s1.clone());
            tokio::spawn(async move {
                let body = format!("r{i}");
                store.commit(commit("s1", Some(&rev), &s1, Some(("e1", body.as_bytes())))).await.unwrap()
            })
        });
        let mut done = 0;
        for t in tries.collect::<Vec<_>>() {
            done += usize::from(t.await.unwrap() == Committed::Done);
        }
        assert_eq!(done, 1, "{}", b.name);
        let now = store.load("s1", Some("e1")).await.unwrap();
        let Some(Journaled::Reply(body)) = now.replied else { panic!("{}: e1 has no reply", b.name) };
        // The same event again, from the revision after its answer: refused, nothing written.
        let l = now.session.unwrap();
        let mut s2 = s1.clone();
        s2.updated_ms += 1;
        let again = store.commit(commit("s1", Some(&l.rev), &s2, Some(("e1", b"other")))).await.unwrap();
        assert_eq!(again, Committed::Changed, "{}: e1 was answered already", b.name);
        let after = store.load("s1", Some("e1")).await.unwrap();
        assert_eq!(after.session.unwrap().state, s1, "{}", b.name);
        assert_eq!(after.replied, Some(Journaled::Reply(body)), "{}", b.name);
    })
    .await;
}

#[tokio::test]
async fn a_revision_from_before_a_removal_does_not_apply_to_the_session_made_again() {
    each(|b, store, _| async move {
        let s0 = waiting("s1");
        assert_eq!(
            store.commit(commit("s1", None, &s0, Some(("e1", b"r1")))).await.unwrap(),
            Committed::Done
        );
        let old = store.load("s1", None).await.unwrap().session.unwrap().rev;
        store.remove_session("s1").await.unwrap();
        assert_eq!(
            store.commit(commit("s1", None, &s0, Some(("e2", b"r2")))).await.unwrap(),
            Committed::Done
        );
        let stale = store.commit(commit("s1", Some(&old), &pressed(&s0), None)).await.unwrap();
        assert_eq!(stale, Committed::Changed, "{}", b.name);
        assert_eq!(store.load("s1", None).await.unwrap().session.unwrap().state, s0, "{}", b.name);
    })
    .await;
}

fn summary_of(session: &str, status: &str) -> SessionSummary {
    SessionSummary {
        session_id: session.into(),
        status: status.into(),
        last_action: Some("HANGUP".into()),
        call_count: Some(1),
        start_time: Some("2026-01-13T08:31:51Z".into()),
        end_time: None,
        legs: vec![],
        error_code: None,
        error_message: None,
    }
}

/// Events of the populated store's sessions, each with its reply (in the order given).
const LIVE_EVENTS: usize = REPLIES_KEPT + 3;

/// Fills `store` as a node would: two machine versions, a call mid-way with more replies than
/// the journal keeps bytes of and script answers, a call on the older machine version, an ended
/// call with its summary, and a summary of a call the store never saw.
async fn populate(store: &dyn Store) -> (Vec<(Version, StoredMachine)>, Vec<String>) {
    let text = std::fs::read_to_string(common::repo().join("machines/abc_restaurant.toml")).unwrap();
    let older = format!("{text}\n# an earlier edit\n");
    let mut machines = Vec::new();
    for text in [text, older] {
        let m = StoredMachine {
            name: "abc_restaurant".into(),
            file: "abc_restaurant.toml".into(),
            text,
            modules: Vec::new(),
        };
        store.put_machine(Version::of_text(&m.text), &m).await.unwrap();
        machines.push((Version::of_text(&m.text), m));
    }
    machines.sort_by_key(|(v, _)| v.0);

    let mut state = waiting("s-live");
    let mut rev = None;
    for i in 0..LIVE_EVENTS {
        let (event, body) = (format!("e{i}"), format!("reply {i}"));
        let e = entry(i as u64);
        let c = Commit {
            entries: std::slice::from_ref(&e),
            ..commit("s-live", rev.as_ref(), &state, Some((&event, body.as_bytes())))
        };
        let done = store.commit(c).await;
        assert_eq!(done.unwrap(), Committed::Done);
        rev = store.load("s-live", None).await.unwrap().session.map(|l| l.rev);
        state = pressed(&state);
    }
    let answers =
        [Answer::Http { status: 200, body: b"{}".to_vec() }, Answer::Failed { reason: "timeout".into() }];
    store.put_answers("s-live", "e3", &answers).await.unwrap();
    store.put_answers("s-live", "e4", &answers[1..]).await.unwrap();
    // e5's request was claimed and never answered (its node stopped mid-request).
    assert_eq!(store.claim("s-live", "e5", 0, u64::MAX, 1).await.unwrap(), Claim::Won);

    let mut on_older = waiting("s-older");
    on_older.version =
        Version::of_text(&machines.iter().find(|(_, m)| m.text.ends_with("edit\n")).unwrap().1.text);
    assert_eq!(
        store.commit(commit("s-older", None, &on_older, Some(("o1", b"older 1")))).await.unwrap(),
        Committed::Done
    );

    let m = common::bundled("abc_restaurant");
    let s0 = waiting("s-ended");
    assert_eq!(
        store.commit(commit("s-ended", None, &s0, Some(("x1", b"ended 1")))).await.unwrap(),
        Committed::Done
    );
    let l = store.load("s-ended", None).await.unwrap().session.unwrap();
    let ended = phonetree::engine::step(&m, &s0, &Event::SessionEnded { status: "COMPLETED".into() }, 9)
        .unwrap()
        .state;
    assert!(ended.closed);
    assert_eq!(store.commit(commit("s-ended", Some(&l.rev), &ended, None)).await.unwrap(), Committed::Done);
    store.put_summary(&summary_of("s-ended", "COMPLETED"), 10).await.unwrap();
    store.put_summary(&summary_of("s-lone", "FAILED"), 11).await.unwrap();

    // Two callers' interrupted calls, and callbacks in three of their states.
    for (caller, node) in [("+6591234567", "main"), ("+6599999999", "billing")] {
        let call = phonetree::store::Unfinished {
            machine: "abc_restaurant".into(),
            version: machines[0].0,
            node: node.into(),
            vars: [("party".to_string(), "4".to_string())].into(),
            session: format!("s-{node}"),
            ended_ms: 12,
        };
        store.put_unfinished(caller, &call).await.unwrap();
    }
    let sent =
        Scheduled { state: ScheduledState::Sent, session: Some("s-cb".into()), ..callback("cb-b", 30) };
    let sending = Scheduled { state: ScheduledState::Sending, ..callback("cb-c", 20) };
    for call in [callback("cb-a", 40), sent, sending] {
        store.put_scheduled(&call).await.unwrap();
    }

    let events = (0..LIVE_EVENTS).map(|i| format!("e{i}")).chain(["o1", "x1", "e-new"].map(String::from));
    (machines, events.collect())
}

/// Every export of `store`, page by page.
async fn export_all(store: &dyn Store, limit: usize) -> Vec<Exported> {
    let mut all = Vec::new();
    let mut after: Option<String> = None;
    loop {
        let page = store.export(after.as_deref(), limit).await.unwrap();
        assert!(page.sessions.len() <= limit);
        all.extend(page.sessions.into_iter().map(|(_, e)| e.unwrap()));
        match page.next {
            Some(n) => after = Some(n),
            None => return all,
        }
    }
}

#[tokio::test]
async fn a_copy_into_any_backend_answers_as_the_source_did() {
    for source in backends() {
        for target in backends() {
            let name = format!("{} -> {}", source.name, target.name);
            let (d1, d2) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
            let from = (source.open)(d1.path()).await;
            let to = (target.open)(d2.path()).await;
            let (machines, events) = populate(from.as_ref()).await;
            let key = from.action_key(Some([7; 32])).await.unwrap();
            let exported = export_all(from.as_ref(), SCAN_PAGE_MAX).await;
            assert_eq!(exported, export_all(from.as_ref(), 1).await, "{name}: pages of one, the same");
            let ids: Vec<&str> = exported.iter().map(|e| e.session.as_str()).collect();
            assert_eq!(ids, ["s-ended", "s-live", "s-older"], "{name}: every session with a state");

            let copied = phonetree::store::copy(from.as_ref(), &to).await.unwrap();
            assert_eq!(
                (copied.machines, copied.sessions, copied.answers, copied.summaries, copied.lone_summaries),
                (2, 3, 2, 1, 1),
                "{name}"
            );
            assert_eq!((copied.unfinished, copied.scheduled), (2, 3), "{name}");
            assert_eq!(copied.action_key, KeyCopied::Copied, "{name}");
            // Interrupted calls move by their key, which names no caller: each caller finds theirs.
            for caller in ["+6591234567", "+6599999999", "+6500000000"] {
                let (a, b) = (
                    from.unfinished("abc_restaurant", caller).await.unwrap(),
                    to.unfinished("abc_restaurant", caller).await.unwrap(),
                );
                assert_eq!(a, b, "{name}: {caller}'s interrupted call");
            }
            assert_eq!(from.scheduled().await.unwrap(), to.scheduled().await.unwrap(), "{name}");
            let found = to.scheduled_by_session("s-cb").await.unwrap().map(|c| c.id);
            assert_eq!(found, Some("cb-b".to_string()), "{name}: a sent callback's summary finds it");
            // A callback being sent when the source stopped is never claimed (so sent) again.
            assert_eq!(to.claim_scheduled(u64::MAX).await.unwrap().map(|c| c.id), Some("cb-a".into()));
            assert_eq!(to.claim_scheduled(u64::MAX).await.unwrap(), None, "{name}");
            // Pages of one give what one page gives.
            let (mut keys, mut after) = (Vec::new(), None);
            while let Some((k, _)) = from.unfinished_page(after, 1).await.unwrap().pop() {
                keys.push(k);
                after = Some(k);
            }
            let all: Vec<_> = from
                .unfinished_page(None, SCAN_PAGE_MAX)
                .await
                .unwrap()
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            assert_eq!((keys.len(), keys), (2, all), "{name}");
            let (mut paged, mut after) = (Vec::new(), None::<String>);
            while let Some(c) = from.scheduled_page(after.as_deref(), 1).await.unwrap().pop() {
                paged.push(c.id.clone());
                after = Some(c.id);
            }
            assert_eq!(paged, ["cb-a", "cb-b", "cb-c"], "{name}: by id");
            assert_eq!(to.action_key(Some([8; 32])).await.unwrap(), key, "{name}: ids still resume there");

            let mut got = to.machines().await.unwrap();
            got.sort_by_key(|(v, _)| v.0);
            assert_eq!(got, machines, "{name}");
            assert_eq!(to.session_count().await.unwrap(), 3, "{name}");
            for session in ids.iter().copied().chain(["s-lone"]) {
                for event in &events {
                    let (a, b) = (
                        from.load(session, Some(event)).await.unwrap(),
                        to.load(session, Some(event)).await.unwrap(),
                    );
                    assert_eq!(a.replied, b.replied, "{name}: {session} {event}");
                    assert_eq!(a.session.map(|l| l.state), b.session.as_ref().map(|l| l.state.clone()));
                    if let Some(l) = b.session {
                        let m = to.machine(l.state.version).await.unwrap();
                        assert!(m.is_some(), "{name}: {session}'s machine version is there");
                    }
                    assert_eq!(
                        from.answers(session, event).await.unwrap(),
                        to.answers(session, event).await.unwrap()
                    );
                }
                assert_eq!(
                    from.summary(session).await.unwrap(),
                    to.summary(session).await.unwrap(),
                    "{name}"
                );
                assert_eq!(
                    from.transcript(session).await.unwrap(),
                    to.transcript(session).await.unwrap(),
                    "{name}: {session}'s transcript"
                );
            }
            assert_eq!(to.transcript("s-live").await.unwrap().len(), LIVE_EVENTS, "{name}");
            // A request claimed in the source is not made again in the target.
            assert_eq!(to.claim("s-live", "e5", 0, u64::MAX, 1).await.unwrap(), Claim::Lapsed, "{name}");
            assert_eq!(to.claim("s-live", "e5", 1, u64::MAX, 1).await.unwrap(), Claim::Won, "{name}");
            // What the duplicates of s-live get: the latest replies' bytes; older events are known.
            let last = LIVE_EVENTS - 1;
            let replied = to.load("s-live", Some(&format!("e{last}"))).await.unwrap().replied;
            assert_eq!(replied, Some(Journaled::Reply(format!("reply {last}").into_bytes())), "{name}");
            assert_eq!(to.load("s-live", Some("e0")).await.unwrap().replied, Some(Journaled::Forgotten));
            assert_eq!(to.summary("s-lone").await.unwrap().map(|s| s.received_ms), Some(11), "{name}");

            // The copied call goes on in the target, and an event answered before stays answered.
            let l = to.load("s-live", None).await.unwrap().session.unwrap();
            let next = pressed(&l.state);
            let again =
                to.commit(commit("s-live", Some(&l.rev), &next, Some((&format!("e{last}"), b"x")))).await;
            assert_eq!(again.unwrap(), Committed::Changed, "{name}: e{last} was answered already");
            let on = to.commit(commit("s-live", Some(&l.rev), &next, Some(("e-new", b"new")))).await;
            assert_eq!(on.unwrap(), Committed::Done, "{name}");
            assert_eq!(
                to.load("s-live", Some("e-new")).await.unwrap().replied,
                Some(Journaled::Reply(b"new".to_vec()))
            );

            // Nothing is overwritten: a session there already, or a target with sessions.
            assert_eq!(to.import(&exported[0]).await.unwrap(), Committed::Changed, "{name}");
            let refused = phonetree::store::copy(from.as_ref(), &to).await;
            assert!(matches!(refused, Err(CopyError::TargetNotEmpty(3))), "{name}: {refused:?}");
        }
    }
}

/// Interrupted calls (a machine's `[resume]`): one per caller and machine, the latest; read back
/// after the store is opened again (as by another node, or after a restart); removed one by one and
/// by age.
#[tokio::test]
async fn interrupted_calls_are_kept_per_caller_and_machine_and_expire_by_age() {
    use phonetree::store::Unfinished;
    each(|b, store, dir| async move {
        let kept = |machine: &str, node: &str, ended_ms: u64| Unfinished {
            machine: machine.into(),
            version: phonetree::machine::Version::of_text(machine),
            node: node.into(),
            vars: [("account".to_string(), "1234".to_string())].into(),
            session: format!("s-{node}"),
            ended_ms,
        };
        assert_eq!(store.unfinished("m", "+6591234567").await.unwrap(), None, "{}", b.name);
        store.put_unfinished("+6591234567", &kept("m", "main", 10)).await.unwrap();
        store.put_unfinished("+6591234567", &kept("m", "billing", 20)).await.unwrap();
        store.put_unfinished("+6599999999", &kept("m", "main", 30)).await.unwrap();
        store.put_unfinished("+6591234567", &kept("other", "main", 40)).await.unwrap();
        drop(store);
        let store = (b.open)(dir.path()).await;
        let got = store.unfinished("m", "+6591234567").await.unwrap();
        assert_eq!(got, Some(kept("m", "billing", 20)), "{}: the latest, per caller and machine", b.name);
        store.remove_unfinished("m", "+6591234567").await.unwrap();
        assert_eq!(store.unfinished("m", "+6591234567").await.unwrap(), None, "{}", b.name);
        store.remove_unfinished("m", "+6591234567").await.unwrap();
        assert_eq!(store.expire_unfinished(35).await.unwrap(), 1, "{}: the one that ended at 30", b.name);
        assert_eq!(store.unfinished("m", "+6599999999").await.unwrap(), None, "{}", b.name);
        assert_eq!(store.unfinished("other", "+6591234567").await.unwrap(), Some(kept("other", "main", 40)));
    })
    .await;
}

/// A pending callback `id`, due at `due_ms`.
fn callback(id: &str, due_ms: u64) -> Scheduled {
    Scheduled {
        id: id.into(),
        origin: id.trim_start_matches("cb-").into(),
        machine: "call_back".into(),
        to: "+6591234567".into(),
        due_ms,
        valid_until_ms: due_ms + 3_600_000,
        attempt: 1,
        attempts: 3,
        from_machine: "sales".into(),
        from_version: Version([7; 32]),
        node: "agent".into(),
        state: ScheduledState::Pending,
        session: None,
        note: Some("NO_ANSWER".into()),
        updated_ms: 5,
    }
}

#[tokio::test]
async fn a_callback_is_written_with_its_commit_only_and_survives_reopening() {
    each(|b, store, dir| async move {
        let s0 = waiting("s1");
        assert_eq!(store.commit(commit("s1", None, &s0, None)).await.unwrap(), Committed::Done);
        let rev = store.load("s1", None).await.unwrap().session.unwrap().rev;
        let s1 = pressed(&s0);
        let cb = callback("cb-s1", 100);
        let with = |rev| Commit { schedule: Some(&cb), ..commit("s1", rev, &s1, None) };
        // A commit that does not apply writes no callback either.
        assert_eq!(store.commit(with(None)).await.unwrap(), Committed::Changed, "{}", b.name);
        assert!(store.scheduled().await.unwrap().is_empty(), "{}", b.name);
        assert_eq!(store.commit(with(Some(&rev))).await.unwrap(), Committed::Done);
        drop(store);
        let store = (b.open)(dir.path()).await;
        assert_eq!(store.scheduled().await.unwrap(), vec![cb.clone()], "{}", b.name);
        assert_eq!(store.load("s1", None).await.unwrap().session.unwrap().state, s1);
        // Written with the new session of the call placed for it: found by that session.
        let sent = Scheduled { state: ScheduledState::Sent, session: Some("api-9".into()), ..cb.clone() };
        let placed = waiting("api-9");
        let c = Commit { schedule: Some(&sent), ..commit("api-9", None, &placed, None) };
        assert_eq!(store.commit(c).await.unwrap(), Committed::Done);
        assert_eq!(store.scheduled_by_session("api-9").await.unwrap(), Some(sent), "{}", b.name);
    })
    .await;
}

#[tokio::test]
async fn a_due_callback_is_claimed_once_however_many_ask_at_once() {
    each(|b, store, _| async move {
        store.put_scheduled(&callback("cb-late", 500)).await.unwrap();
        store.put_scheduled(&callback("cb-early", 100)).await.unwrap();
        // Nothing is due before its time.
        assert_eq!(store.claim_scheduled(99).await.unwrap(), None, "{}", b.name);
        let claims = futures_join_all((0..8).map(|_| {
            let store = store.clone();
            async move { store.claim_scheduled(200).await.unwrap() }
        }))
        .await;
        let won: Vec<&Scheduled> = claims.iter().flatten().collect();
        assert_eq!(won.len(), 1, "{}: {claims:?}", b.name);
        assert_eq!((won[0].id.as_str(), won[0].state), ("cb-early", ScheduledState::Sending));
        // Claimed is kept: never claimed again, listed as being sent; the later one in its turn.
        assert_eq!(store.claim_scheduled(200).await.unwrap(), None);
        let claimed = store.claim_scheduled(600).await.unwrap().unwrap();
        assert_eq!(claimed.id, "cb-late");
        let states: Vec<ScheduledState> = store.scheduled().await.unwrap().iter().map(|c| c.state).collect();
        assert_eq!(states, [ScheduledState::Sending, ScheduledState::Sending], "{}", b.name);
    })
    .await;
}

#[tokio::test]
async fn callbacks_are_found_by_their_session_cancelled_while_pending_and_expired_when_finished() {
    each(|b, store, _| async move {
        let mut sent = callback("cb-a", 100);
        (sent.state, sent.session) = (ScheduledState::Sent, Some("api-1".into()));
        store.put_scheduled(&sent).await.unwrap();
        store.put_scheduled(&callback("cb-b", 200)).await.unwrap();
        assert_eq!(store.scheduled_by_session("api-1").await.unwrap(), Some(sent.clone()), "{}", b.name);
        assert_eq!(store.scheduled_by_session("api-2").await.unwrap(), None);
        assert!(
            matches!(store.cancel_scheduled("cb-a", 9).await.unwrap(), Cancelled::NotPending(c) if c == sent)
        );
        assert_eq!(store.cancel_scheduled("cb-x", 9).await.unwrap(), Cancelled::Unknown);
        let Cancelled::Done(c) = store.cancel_scheduled("cb-b", 9).await.unwrap() else {
            panic!("{}", b.name)
        };
        assert_eq!((c.state, c.updated_ms), (ScheduledState::Cancelled, 9));
        assert_eq!(
            store.claim_scheduled(1_000).await.unwrap(),
            None,
            "a cancelled callback is never claimed"
        );
        // Finished before the time given: deleted; a pending one stays whatever its age.
        store.put_scheduled(&callback("cb-c", 300)).await.unwrap();
        assert_eq!(store.expire_scheduled(9).await.unwrap(), 1, "{}", b.name);
        let left: Vec<String> = store.scheduled().await.unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(left, ["cb-b", "cb-c"]);
        assert_eq!(store.expire_scheduled(10).await.unwrap(), 1);
        let left: Vec<String> = store.scheduled().await.unwrap().into_iter().map(|c| c.id).collect();
        assert_eq!(left, ["cb-c"]);
    })
    .await;
}
