//! Reading a node's `/metrics`: the text exposition parsed into samples, and the values of one
//! metric by some of its labels.

use std::collections::BTreeMap;

use super::Node;

/// One series: its name and labels.
pub type Series = (String, BTreeMap<String, String>);

/// The samples of a text exposition, by series.
pub fn parse(text: &str) -> BTreeMap<Series, f64> {
    let mut samples = BTreeMap::new();
    for line in text.lines().filter(|l| !l.is_empty() && !l.starts_with('#')) {
        let (series, value) = line.rsplit_once(' ').unwrap_or_else(|| panic!("no value: {line}"));
        let value: f64 = value.parse().unwrap_or_else(|e| panic!("{e}: {line}"));
        let (name, labels) = match series.split_once('{') {
            None => (series.to_string(), BTreeMap::new()),
            Some((name, rest)) => {
                let rest = rest.strip_suffix('}').unwrap_or_else(|| panic!("unclosed labels: {line}"));
                let mut labels = BTreeMap::new();
                // Label values here never hold `",` (they are names from bounded sets).
                for pair in rest.split("\",").filter(|p| !p.is_empty()) {
                    let (k, v) = pair.split_once("=\"").unwrap_or_else(|| panic!("bad label: {line}"));
                    labels.insert(k.to_string(), v.trim_end_matches('"').to_string());
                }
                (name.to_string(), labels)
            }
        };
        assert!(samples.insert((name, labels), value).is_none(), "a series twice: {line}");
    }
    samples
}

/// The values of metric `name` whose labels include `fixed`, by the values of `keys`.
pub fn values(
    samples: &BTreeMap<Series, f64>,
    name: &str,
    fixed: &[(&str, &str)],
    keys: &[&str],
) -> BTreeMap<Vec<String>, f64> {
    samples
        .iter()
        .filter(|((n, labels), _)| {
            n == name && fixed.iter().all(|(k, v)| labels.get(*k).map(String::as_str) == Some(*v))
        })
        .map(|((_, labels), v)| {
            (keys.iter().map(|k| labels.get(*k).cloned().unwrap_or_default()).collect(), *v)
        })
        .collect()
}

pub fn expected(rows: &[(&[&str], f64)]) -> BTreeMap<Vec<String>, f64> {
    rows.iter().map(|(k, v)| (k.iter().map(|s| s.to_string()).collect(), *v)).collect()
}

pub async fn scrape(n: &Node, token: Option<&str>) -> (u16, Option<String>, String) {
    let mut request = reqwest::Client::new().get(n.admin_url("/metrics"));
    if let Some(token) = token {
        request = request.bearer_auth(token);
    }
    let r = request.send().await.unwrap();
    let status = r.status().as_u16();
    let content_type = r.headers().get("content-type").map(|h| h.to_str().unwrap().to_string());
    (status, content_type, r.text().await.unwrap())
}
