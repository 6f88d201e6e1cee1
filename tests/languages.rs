//! Machines in several languages (issue 25, item 3): every spoken text a table by language,
//! chosen by the call's language variable and said in that language's voice. `check` refuses a
//! missing translation naming the node, the field and the language; `bank_balance` is one menu
//! tree in English and Spanish, proven in both; `simulate` and a real node play each language.

use crate::common;

use std::process::Output;

use common::*;
use phonetree::machine::{Source, compile};
use serde_json::Value;

fn phonetree(args: &[&str]) -> Output {
    std::process::Command::new(env!("CARGO_BIN_EXE_phonetree"))
        .args(args)
        .current_dir(repo())
        .output()
        .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// The diagnostics of a machine text, as `check` prints them.
fn diagnostics(text: &str) -> Vec<String> {
    compile(&Source::new("m.toml", text)).diagnostics.iter().map(|d| d.to_string()).collect()
}

const HOTLINE: &str = "tests/data/languages/hotline.toml";

#[test]
fn a_machine_missing_one_spanish_prompt_fails_check_naming_the_node_and_es() {
    let out = phonetree(&["check", "tests/data/languages/missing_es.toml"]);
    assert_eq!(out.status.code(), Some(1), "{}", stdout(&out));
    let text = stdout(&out);
    assert_eq!(text.matches("error:").count(), 1, "{text}");
    assert!(
        text.contains(
            "tests/data/languages/missing_es.toml:36:10: error: node `main`, field `prompt`: no `es` text: \
             `prompt` must be said in every language\n  = hint: add `es = \"...\"` to `prompt`"
        ),
        "{text}"
    );
    // The complete machine proves.
    let out = phonetree(&["check", HOTLINE]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
}

/// A two-language machine around one node's fields.
fn bilingual(node: &str) -> String {
    format!(
        "name = \"m\"\nstart = \"hi\"\nlanguages = [\"en\", \"es\"]\nlanguage_variable = \"lang\"\n\
         variables = {{ lang = \"en\" }}\n\
         voices = {{ en = \"en-US-BenjaminRUS\", es = \"es-ES-HelenaRUS\" }}\n\
         fallback = {{ en = \"Sorry.\", es = \"Lo siento.\" }}\n\
         [nodes.hi]\nkind = \"say\"\n{node}\nnext = \"bye\"\n[nodes.bye]\nkind = \"hangup\"\n"
    )
}

#[test]
fn every_spoken_text_is_in_every_language_with_a_voice() {
    assert_eq!(diagnostics(&bilingual("text = { en = \"Hi.\", es = \"Hola.\" }")), Vec::<String>::new());
    // One text where the machine speaks two.
    let shown = diagnostics(&bilingual("text = \"Hi.\""));
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with("m.toml:10:8: error: node `hi`, field `text`: `text` is one text, but the machine speaks `en` and `es`"),
        "{shown:?}"
    );
    // A language the machine does not speak (a typo).
    let shown = diagnostics(&bilingual("text = { en = \"Hi.\", es = \"Hola.\", sp = \"Hola.\" }"));
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with(
            "m.toml:10:41: error: node `hi`, field `text.sp`: `sp` is not one of the machine's languages"
        ),
        "{shown:?}"
    );
    // A language without a voice.
    let text = bilingual("text = { en = \"Hi.\", es = \"Hola.\" }").replace(", es = \"es-ES-HelenaRUS\"", "");
    let shown = diagnostics(&text);
    assert!(
        shown[0].starts_with("m.toml:6:10: error: field `voices`: language `es` has no voice"),
        "{shown:?}"
    );
    // ... so that the node has none to speak Spanish in.
    assert!(shown[1].starts_with("m.toml:8:8: error: node `hi`: no voice profile"), "{shown:?}");
    assert_eq!(shown.len(), 2, "{shown:?}");
    // A voice 8x8 may not have: a warning, as for any voice profile.
    let text =
        bilingual("text = { en = \"Hi.\", es = \"Hola.\" }").replace("es-ES-HelenaRUS", "es-ES-HelenRUS");
    let shown = diagnostics(&text);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].contains("warning: field `voices.es`: unknown voice profile `es-ES-HelenRUS`"),
        "{shown:?}"
    );
    // Two languages and no variable to choose between them; no fallback in them.
    let text =
        bilingual("text = { en = \"Hi.\", es = \"Hola.\" }").replace("language_variable = \"lang\"\n", "");
    assert!(
        diagnostics(&text)
            .iter()
            .any(|d| d.contains("the machine speaks `en` and `es` but names no `language_variable`")),
        "{:?}",
        diagnostics(&text)
    );
    let text = bilingual("text = { en = \"Hi.\", es = \"Hola.\" }")
        .replace("fallback = { en = \"Sorry.\", es = \"Lo siento.\" }\n", "");
    assert!(
        diagnostics(&text).iter().any(|d| d.contains("has no `fallback` in them")),
        "{:?}",
        diagnostics(&text)
    );
    // A language variable nothing sets: a warning, every caller hears the first language.
    let shown = diagnostics(
        &bilingual("text = { en = \"Hi.\", es = \"Hola.\" }").replace("variables = { lang = \"en\" }\n", ""),
    );
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].starts_with("m.toml:4:21: warning: field `language_variable`: no node sets `lang` and it is not one of `variables`: every caller hears `en`"),
        "{shown:?}"
    );
    // A table by language in a machine that names no languages.
    let plain = "name = \"m\"\nstart = \"hi\"\n[defaults]\nvoice_profile = \"en-US-BenjaminRUS\"\n\
                 [nodes.hi]\nkind = \"say\"\ntext = { en = \"Hi.\" }\nnext = \"bye\"\n[nodes.bye]\nkind = \"hangup\"\n";
    let shown = diagnostics(plain);
    assert_eq!(shown.len(), 1, "{shown:?}");
    assert!(
        shown[0].contains("`text` is a table by language, but the machine names no `languages`"),
        "{shown:?}"
    );
}

#[test]
fn each_language_s_text_is_held_to_8x8_s_limits_at_its_own_line_and_column() {
    let long = "Hola. ".repeat(501);
    let shown = diagnostics(&bilingual(&format!("text = {{ en = \"Hi.\", es = \"{long}\" }}")));
    let errors: Vec<&String> = shown.iter().filter(|d| d.contains("error:")).collect();
    assert_eq!(errors.len(), 1, "{shown:?}");
    assert!(errors[0].starts_with("m.toml:10:27: error: node `hi`, field `text.es`: "), "{shown:?}");
}

#[test]
fn bank_balance_is_one_menu_tree_proven_in_both_languages() {
    let m = bundled("bank_balance");
    assert_eq!(m.languages(), ["en", "es"]);
    assert_eq!(m.language_variable(), Some("lang"));
    // One balance node, one agent greeting: no menu is duplicated per language.
    assert!(m.node_id("balance").is_some() && m.node_id("balance_es").is_none());
    let r = phonetree::proof::explore::explore(&m);
    assert!(r.proven(), "{:#?}", r.violations);
    assert_eq!(r.edges_covered, r.edges);
    assert_eq!((r.states, r.transitions, r.paths), (239, 1157, 1863));
}

/// `simulate --json` on bank_balance in business hours: the texts and voices of each reply.
fn simulated(args: &[&str]) -> Vec<(String, String)> {
    let mut all = vec!["simulate", "machines/bank_balance.toml", "--json", "--at=2026-01-05T09:00:00+08:00"];
    all.extend(args);
    let out = phonetree(&all);
    assert_eq!(out.status.code(), Some(0), "{}{}", stdout(&out), String::from_utf8_lossy(&out.stderr));
    spoken(stdout(&out).lines().map(|l| serde_json::from_str::<Value>(l).unwrap()))
}

/// The (text, voice) of every spoken action of the replies.
fn spoken(replies: impl Iterator<Item = Value>) -> Vec<(String, String)> {
    let mut out = Vec::new();
    for reply in replies {
        for a in reply["callflow"].as_array().into_iter().flatten() {
            let p = &a["params"];
            if let Some(text) = p["text"].as_str().or(p["promptMessage"].as_str()) {
                out.push((text.to_string(), p["voiceProfile"].as_str().unwrap_or("").to_string()));
            }
        }
    }
    out
}

#[test]
fn simulate_plays_bank_balance_in_each_language() {
    let said = simulated(&["1", "1234", "@ok&balance=12.50"]);
    let pair = |t: &str, v: &str| (t.to_string(), v.to_string());
    assert!(
        said.contains(&pair("Please key in your four digit PIN, then press hash.", "en-US-BenjaminRUS")),
        "{said:?}"
    );
    assert_eq!(said.last(), Some(&pair("Your balance is 12.50 dollars. Goodbye.", "en-US-BenjaminRUS")));
    let said = simulated(&["2", "1111", "@wrong", "1234", "@ok&balance=12.50"]);
    // The language menu before the choice: English first, the Spanish part in the Spanish voice.
    assert_eq!(said[0], pair("Welcome to the bank. For English, press 1.", "en-US-BenjaminRUS"));
    assert_eq!(said[1], pair("Para español, oprima 2.", "es-ES-HelenaRUS"));
    assert_eq!(said[2], pair("Marque su PIN de cuatro dígitos y luego la tecla numeral.", "es-ES-HelenaRUS"));
    assert!(said.contains(&pair("Ese PIN no es correcto.", "es-ES-HelenaRUS")), "{said:?}");
    assert_eq!(said.last(), Some(&pair("Su saldo es 12.50 dólares. Adiós.", "es-ES-HelenaRUS")));
    assert!(said.iter().skip(2).all(|(_, v)| v == "es-ES-HelenaRUS"), "{said:?}");
}

/// One inbound call to the hotline on a real node: the (text, voice) of each reply.
struct Call<'a> {
    n: &'a Node,
    session: &'a str,
    id: Option<String>,
    events: usize,
}

impl Call<'_> {
    async fn send(&mut self, status: &str, dtmf: Option<&str>) -> Vec<(String, String)> {
        self.events += 1;
        let event = format!("{}-e{}", self.session, self.events);
        let body = Vca {
            session: self.session,
            event: &event,
            dtmf,
            client_action_id: self.id.as_deref(),
            status,
            direction: "INBOUND",
            source: "+6591178965",
            destination: "+6568880009",
            event_data: false,
        }
        .body();
        let a = post(&self.n.url("/webhooks/vca"), body).await;
        assert_eq!(a.status, 200);
        self.id = a.callflow().client_action_id;
        spoken(std::iter::once(a.json()))
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_real_node_serves_a_spanish_call_in_the_spanish_voice() {
    let t = tempfile::tempdir().unwrap();
    let dir = t.path().join("machines");
    std::fs::create_dir_all(&dir).unwrap();
    std::fs::copy(repo().join(HOTLINE), dir.join("hotline.toml")).unwrap();
    let mut n = Node::start(&t.path().join("data"), &dir);
    let pair = |t: &str, v: &str| (t.to_string(), v.to_string());

    let mut call = Call { n: &n, session: "s-lang-es", id: None, events: 0 };
    let said = call.send("CALL_RECEIVED", None).await;
    assert_eq!(
        said,
        [
            pair("For English, press 1.", "en-US-BenjaminRUS"),
            pair("Para español, oprima 2.", "es-ES-HelenaRUS")
        ]
    );
    let said = call.send("DTMF_RECEIVED", Some("2")).await;
    assert_eq!(said, [pair("Para nuestro horario, oprima 1. Para un agente, oprima 2.", "es-ES-HelenaRUS")]);
    // A key no branch takes: the Spanish re-prompt.
    let said = call.send("DTMF_RECEIVED", Some("7")).await;
    assert_eq!(said, [pair("Por favor, oprima 1 o 2.", "es-ES-HelenaRUS")]);
    let said = call.send("DTMF_RECEIVED", Some("1")).await;
    assert_eq!(said, [pair("Abrimos de 9 a 5, de lunes a viernes.", "es-ES-HelenaRUS")]);

    // Another caller, English: the same nodes in the English texts and voice.
    let mut call = Call { n: &n, session: "s-lang-en", id: None, events: 0 };
    call.send("CALL_RECEIVED", None).await;
    let said = call.send("DTMF_RECEIVED", Some("1")).await;
    assert_eq!(said, [pair("For our opening hours, press 1. For an agent, press 2.", "en-US-BenjaminRUS")]);
    let said = call.send("DTMF_RECEIVED", Some("1")).await;
    assert_eq!(said, [pair("We are open 9 to 5, Monday to Friday.", "en-US-BenjaminRUS")]);
    assert!(n.terminate().success());
}

/// The explorer plays every reply in every language the call can be in: a problem only the
/// Spanish text has (it says a stored value an answer may lack) is found, on the Spanish path.
#[test]
fn the_explorer_proves_each_language_s_texts_on_their_own_paths() {
    let text = r#"
name = "eta"
start = "language"
allow_hosts = ["127.0.0.1:8090"]
languages = ["en", "es"]
language_variable = "lang"
voices = { en = "en-US-BenjaminRUS", es = "es-ES-HelenaRUS" }
fallback = { en = "Sorry.", es = "Lo siento." }

[defaults]
min_digits = 1
max_digits = 1

[nodes.language]
kind = "menu"
prompt = { en = "For English, press 1.", es = "Para español, oprima 2." }
branches = { 1 = "english", 2 = "spanish" }
invalid = "english"

[nodes.english]
kind = "set"
values = { lang = "en" }
next = "main"

[nodes.spanish]
kind = "set"
values = { lang = "es" }
next = "main"

# Both languages wait here: only a state that holds the language tells their calls apart.
[nodes.main]
kind = "menu"
prompt = { en = "To track your order, press 1.", es = "Para seguir su pedido, oprima 1." }
branches = { 1 = "lookup" }
invalid = "bye"

[nodes.lookup]
kind = "script"
url = "http://127.0.0.1:8090/eta"
response_key = "status"
branches = { ok = "tell" }
default = "tell"
failure = "bye"
store = { eta = "eta" }

[nodes.tell]
kind = "say"
text = { en = "Your order is on its way.", es = "Su pedido llega {eta}." }
next = "bye"

[nodes.bye]
kind = "hangup"
"#;
    let m = compile_text("eta.toml", text);
    let r = phonetree::proof::explore::explore(&m);
    let unset: Vec<_> =
        r.violations.iter().filter(|v| v.kind == phonetree::proof::explore::Kind::UnsetVariable).collect();
    assert_eq!(unset.len(), 1, "{:#?}", r.violations);
    assert_eq!(unset[0].node, "tell");
    assert_eq!(unset[0].inputs[..2], ["2", "1"], "{:?}", unset[0].inputs);
    // The same machine with the value said in English only is found on the English path.
    let english = text
        .replace("Your order is on its way.", "Your order arrives {eta}.")
        .replace("llega {eta}", "va en camino");
    let r = phonetree::proof::explore::explore(&compile_text("eta.toml", &english));
    let unset: Vec<_> =
        r.violations.iter().filter(|v| v.kind == phonetree::proof::explore::Kind::UnsetVariable).collect();
    assert_eq!(unset.len(), 1, "{:#?}", r.violations);
    assert_eq!(unset[0].inputs[..2], ["1", "1"], "{:?}", unset[0].inputs);
}

/// A module's texts are said in the using machine's languages: one it lacks is an error in the
/// module's own file, naming its node and the language; languages beyond the machine's are those
/// the module lists, each a language name.
#[test]
fn a_module_s_texts_need_every_language_of_the_machine_that_uses_it() {
    use phonetree::machine::{Modules, Options, compile_with};
    let module = |text: &str| {
        format!(
            "name = \"hello\"\nstart = \"hi\"\nexits = [\"done\"]\nlanguages = [\"en\", \"es\", \"fr\"]\n\
             [nodes.hi]\nkind = \"say\"\ntext = {text}\nnext = \"out\"\n[nodes.out]\nkind = \"exit\"\nexit = \"done\"\n"
        )
    };
    let machine = bilingual("module = \"hello\"\nexits = { done = \"bye\" }")
        .replace("kind = \"say\"", "kind = \"module\"")
        .replace("\nnext = \"bye\"\n[nodes.bye]", "\n[nodes.bye]");
    let shown = |module_text: &str| -> Vec<String> {
        let (modules, problems) = Modules::of(vec![Source::new("modules/hello.toml", module_text)]);
        assert!(problems.is_empty(), "{problems:?}");
        let options = Options { modules: &modules, ..Default::default() };
        let compiled = compile_with(&Source::new("m.toml", &machine), options);
        compiled.diagnostics.iter().filter(|d| d.is_error()).map(|d| d.to_string()).collect()
    };
    // Every language of the machine, and `fr` the module lists: fine.
    let complete = module("{ en = \"Hello.\", es = \"Hola.\", fr = \"Bonjour.\" }");
    assert_eq!(shown(&complete), Vec::<String>::new());
    // Spanish missing: in the module's file, at its node.
    let errors = shown(&module("{ en = \"Hello.\", fr = \"Bonjour.\" }"));
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("modules/hello.toml:7:8: error: node `hi`, field `text`: no `es` text")),
        "{errors:?}"
    );
    // A language neither the machine nor the module lists.
    let errors = shown(&module("{ en = \"Hello.\", es = \"Hola.\", de = \"Hallo.\" }"));
    assert!(
        errors.iter().any(|e| e.contains("field `text.de`: `de` is not one of the machine's languages")),
        "{errors:?}"
    );
    // A module's `languages` are language names.
    let errors = shown(&complete.replace("\"fr\"]", "\"French\"]"));
    assert!(
        errors.iter().any(|e| e.contains(
            "modules/hello.toml:4:26: error: field `languages.2`: `French` is not a language name"
        )),
        "{errors:?}"
    );
}
