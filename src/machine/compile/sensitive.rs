//! Sensitive call variables (`sensitive = true` on an input, or on a script's stored value): where
//! they may go (a script's POST body, to an https host or a loopback host the machine lists) and
//! how long they live (the webhook that set them: the engine forgets them when the step ends).

use std::collections::{BTreeSet, HashMap, VecDeque};

use petgraph::Direction;
use petgraph::visit::EdgeRef;

use super::super::definition::Kind;
use super::super::template::{self, Template};
use super::super::{Edge, Machine, NodeId, NodeKind, Script, hosts};
use super::flow::templates_of;
use super::{At, Compiler};

impl Compiler<'_> {
    /// Fills `m.sensitive` from the definitions, then reports every template that would speak,
    /// log or send a sensitive variable elsewhere than a script's POST body, every such body sent
    /// where it may be read on the way, and every use after the call waited since it was set.
    pub(super) fn check_sensitive(&mut self, m: &mut Machine, failed: &[bool], has_start: bool) {
        let def = self.def;
        for (_, n) in &def.nodes {
            if matches!(n.kind, Some(Kind::Input) | None) && n.sensitive == Some(true) {
                m.sensitive.extend(n.variable.iter().cloned());
            }
            if matches!(n.kind, Some(Kind::Script) | None) {
                let stored = n.store.iter().flatten().filter(|(_, s)| s.sensitive == Some(true));
                m.sensitive.extend(stored.map(|(v, _)| v.clone()));
            }
        }
        if m.sensitive.is_empty() {
            return;
        }
        for id in m.graph.node_indices().filter(|id| !failed[id.index()]) {
            self.sensitive_fields(m, id);
        }
        if has_start {
            self.sensitive_lifetimes(m, failed);
        }
    }

    /// Each template field of node `id` that names a sensitive variable, where it may not.
    fn sensitive_fields(&mut self, m: &Machine, id: NodeId) {
        let node = &m.graph[id];
        let name = node.name.clone();
        let mut problems: Vec<(&str, String, String)> = Vec::new();
        for (field, t) in templates_of(&node.kind) {
            for var in t.vars().filter(|v| m.sensitive.contains(*v)) {
                let (message, hint) = match (&node.kind, field) {
                    (NodeKind::Script(_), "body") => continue,
                    (_, "prompt" | "reprompt" | "text" | "success_message" | "failure_message") => (
                        format!(
                            "sensitive `{var}` is spoken here: a sensitive value is never said to the caller"
                        ),
                        "leave it out of what is said; send it to a script's `body` only".to_string(),
                    ),
                    (NodeKind::Script(_), "url" | "headers") => (
                        format!(
                            "sensitive `{var}` is in the script's {field}: it may travel only in a POST body"
                        ),
                        "move it to `body` (proxies and servers log URLs and headers)".to_string(),
                    ),
                    _ => (
                        format!(
                            "sensitive `{var}` is used in `{field}`: only a script's POST `body` may carry it"
                        ),
                        "send it to a script's `body`, and route on the script's answer".to_string(),
                    ),
                };
                problems.push((field, message, hint));
            }
        }
        if let NodeKind::Script(s) = &node.kind
            && let Some(var) =
                s.request.body.iter().flatten().flat_map(|(_, t)| t.vars()).find(|v| m.sensitive.contains(*v))
        {
            problems.extend(self.sensitive_request(m, s, var));
        }
        if let NodeKind::Script(s) = &node.kind
            && s.cache_minutes.is_some()
            && let Some(stored) = s.store.iter().find(|st| m.sensitive.contains(&st.var))
        {
            problems.push((
                "cache_minutes",
                format!(
                    "the answer holds sensitive `{}`, and a cached answer is kept in the store",
                    stored.var
                ),
                "remove `cache_minutes` from this script".to_string(),
            ));
        }
        problems.dedup_by(|a, b| a.1 == b.1);
        for (field, message, hint) in problems {
            self.error(At::Node(&name, field), message, Some(hint));
        }
    }

    /// A script whose body carries sensitive `var`: to an https host, or to a loopback host the
    /// machine's `allow_hosts` lists with its port; never cached (the cache keeps the request).
    fn sensitive_request<'f>(&self, m: &Machine, s: &Script, var: &str) -> Vec<(&'f str, String, String)> {
        let mut problems = Vec::new();
        if s.cache_minutes.is_some() {
            problems.push((
                "cache_minutes",
                format!("the body carries sensitive `{var}`, and a cached request is kept in the store with its body"),
                "remove `cache_minutes` from this script".to_string(),
            ));
        }
        if !private_way(m, &s.request.url) {
            problems.push((
                "url",
                format!("the body carries sensitive `{var}` to a host that is neither https nor a loopback host the machine lists"),
                "call the API over `https://`, or list its loopback address with its port in `allow_hosts`".to_string(),
            ));
        }
        problems
    }

    /// A sensitive variable lives for the step that set it: no read (a script's body, a route
    /// rule) may follow a waiting node that came after its setter unless it is set again between.
    fn sensitive_lifetimes(&mut self, m: &Machine, failed: &[bool]) {
        let flow = forgotten_on_entry(m, failed);
        for id in m.graph.node_indices().filter(|id| !failed[id.index()]) {
            let node = &m.graph[id];
            let Some(at) = flow.get(&id) else { continue };
            let gone = match &node.kind {
                // A script that asks for keys makes its request in the next step.
                NodeKind::Script(s) if s.capture.is_some() => {
                    at.maybe_set.union(&at.forgotten).cloned().collect()
                }
                _ => at.forgotten.clone(),
            };
            let mut reads: Vec<(&str, &str)> = Vec::new();
            match &node.kind {
                NodeKind::Script(s) => {
                    reads.extend(
                        s.request.body.iter().flatten().flat_map(|(_, t)| t.vars()).map(|v| ("body", v)),
                    );
                }
                NodeKind::Route(r) => {
                    reads.extend(
                        r.rules.iter().filter_map(|r| r.var.as_ref()).map(|(v, _)| ("rules", v.as_str())),
                    );
                }
                _ => {}
            }
            let name = node.name.clone();
            let mut told = BTreeSet::new();
            for (field, var) in reads {
                if gone.contains(var) && told.insert(var) {
                    self.error(
                        At::Node(&name, field),
                        format!("sensitive `{var}` may be gone here: phonetree forgets it at the end of the webhook that set it, and some way here waits for the caller since"),
                        Some("read it only between its input (or script) and the next menu, input or transfer".into()),
                    );
                }
            }
        }
    }
}

/// Whether a script's URL goes over https, or to a loopback host (with its port) the machine's
/// `allow_hosts` lists.
fn private_way(m: &Machine, url: &Template) -> bool {
    let Some(template::Part::Lit(head)) = url.parts().first() else { return false };
    let end = head.find("://").map_or(0, |i| i + 3);
    let authority_end = head[end..].find(['/', '?', '#']).map_or(head.len(), |i| end + i);
    let Ok(parsed) = url::Url::parse(&head[..authority_end]) else { return false };
    if parsed.scheme() == "https" {
        return true;
    }
    let (Some(host), Some(port)) = (parsed.host(), parsed.port_or_known_default()) else { return false };
    let text = hosts::host_text(&host);
    let loopback = match host {
        url::Host::Domain(d) => hosts::is_loopback_name(d),
        url::Host::Ipv4(ip) => ip.is_loopback(),
        url::Host::Ipv6(ip) => ip.is_loopback(),
    };
    loopback && m.allow_hosts.iter().any(|h| h.port() == Some(port) && h.names(&text))
}

/// On entering a node: the sensitive variables some way here may have set, and those some way
/// here set and then waited at a waiting node (menu, input, a script that asks for keys, a
/// transfer: each ends the step, and the engine forgets them), without setting them again.
#[derive(Default, Clone, PartialEq)]
struct Lifetimes {
    maybe_set: BTreeSet<String>,
    forgotten: BTreeSet<String>,
}

/// `Lifetimes` on entering each node reached from the start, to a fixed point (unions only grow).
fn forgotten_on_entry(m: &Machine, failed: &[bool]) -> HashMap<NodeId, Lifetimes> {
    let mut flow: HashMap<NodeId, Lifetimes> = HashMap::from([(m.start, Lifetimes::default())]);
    let mut queue = VecDeque::from([m.start]);
    while let Some(id) = queue.pop_front() {
        let kind = &m.graph[id].kind;
        let waits = matches!(
            kind,
            NodeKind::Menu(_)
                | NodeKind::Input(_)
                | NodeKind::Transfer(_)
                | NodeKind::Script(Script { capture: Some(_), .. })
        );
        let here = flow.get(&id).cloned().unwrap_or_default();
        for e in m.graph.edges_directed(id, Direction::Outgoing) {
            let mut out = here.clone();
            if waits {
                out.forgotten.extend(out.maybe_set.iter().cloned());
            }
            let set: Vec<&String> = match (kind, e.weight()) {
                (NodeKind::Input(input), Edge::Next) => vec![&input.variable],
                (NodeKind::Script(s), Edge::Response(_) | Edge::Default) => {
                    s.store.iter().map(|s| &s.var).collect()
                }
                _ => vec![],
            };
            for var in set.into_iter().filter(|v| m.sensitive.contains(*v)) {
                out.maybe_set.insert(var.clone());
                out.forgotten.remove(var);
            }
            if failed[id.index()] {
                // Nothing after a node that did not compile is blamed on it.
                out.forgotten.clear();
            }
            let first = !flow.contains_key(&e.target());
            let there = flow.entry(e.target()).or_default();
            let before = there.clone();
            there.maybe_set.extend(out.maybe_set);
            there.forgotten.extend(out.forgotten);
            if first || *there != before {
                queue.push_back(e.target());
            }
        }
    }
    flow
}
