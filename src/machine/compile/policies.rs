//! Policies pass: a machine's own `[[policies]]` read (`machine::policy`), each node it names a
//! node of the machine (with "did you mean"), and each `after = "NODE:EDGE"` an edge that node
//! has. What they say over every path is the prover's (`proof::policy`).

use super::{At, Compiler};
use crate::machine::diagnostic::closest;
use crate::machine::policy::{self, Rule};
use crate::machine::{Machine, Severity};

impl Compiler<'_> {
    pub(super) fn check_policies(&mut self, machine: &mut Machine) {
        let (policies, diags) = policy::read(self.source, &self.def.policies, true);
        self.diags.extend(diags);
        let mut ok = Vec::with_capacity(policies.len());
        for p in policies {
            let index = p.index;
            let mut fine = true;
            for (field, name) in policy::names(&p.rule) {
                if machine.node_id(name).is_none() {
                    fine = false;
                    let hint = closest(name, self.def.nodes.iter().map(|(n, _)| n.as_str()))
                        .map(|c| format!("did you mean `{c}`?"))
                        .unwrap_or_else(|| {
                            "name one of the machine's nodes, or the keywords `transfer` / `recorded_transfer`"
                                .into()
                        });
                    self.report(
                        Severity::Error,
                        At::Machine(&format!("policies.{index}.{field}")),
                        format!("policy {}: node `{name}` does not exist", index + 1),
                        Some(hint),
                    );
                }
            }
            if let Rule::Never { after, .. } = &p.rule
                && let (Some(id), Some(edge)) = (machine.node_id(&after.node), &after.edge)
                && !machine.edges(id).iter().any(|(e, _)| policy::names_edge(e, edge))
            {
                fine = false;
                let edges: Vec<String> = machine.edges(id).iter().map(|(e, _)| format!("`{e}`")).collect();
                self.report(
                    Severity::Error,
                    At::Machine(&format!("policies.{index}.after")),
                    format!("policy {}: node `{}` has no `{edge}` edge", index + 1, after.node),
                    Some(format!(
                        "its edges are {}; write `else`, `default`, `failure`, `invalid`, `no_input`, `next`, `rule N`, a key or an answer value",
                        edges.join(", ")
                    )),
                );
            }
            if fine {
                ok.push(p);
            }
        }
        machine.policies = ok;
    }
}
