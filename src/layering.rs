//! Checks the module map of `lib.rs` rather than claiming it: every source file's `crate::` (and
//! `super::` beyond its top module) imports name only its own layer or the layers below it, in
//! the order of [`crate::LAYERS`]; `plan` uses nothing of `act` but `act::exec`; and no module
//! but the cluster module reads etcd's error text.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::LAYERS;

/// The layer of a top-level module, if it is declared.
fn layer_of(module: &str) -> Option<usize> {
    LAYERS.iter().position(|layer| layer.contains(&module))
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            sources(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The module path of a file relative to `src/`: `act/membership.rs` -> [act, membership],
/// `observe/datadir/mod.rs` -> [observe, datadir].
fn module_path(relative: &Path) -> Vec<String> {
    let mut parts: Vec<String> = relative.iter().map(|p| p.to_string_lossy().into_owned()).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// The code of a line without its comment (good enough for this source: no `//` in strings
/// that matter here).
fn code(line: &str) -> &str {
    match line.find("//") {
        Some(at) => &line[..at],
        None => line,
    }
}

fn ident_at(text: &str) -> String {
    text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect()
}

/// The crate-level modules (and, for `act`, the second segment) a file's text imports, given
/// its own module path. `crate::a::b`, `crate::{a, b::c}`, and `super::` chains that climb out
/// of the file's top module.
fn imports(text: &str, own: &[String]) -> Vec<(String, String)> {
    let mut found = Vec::new();
    for line in text.lines().map(code) {
        let mut rest = line;
        while let Some(at) = rest.find("crate::") {
            let after = &rest[at + "crate::".len()..];
            if let Some(group) = after.strip_prefix('{') {
                let inner = group.split('}').next().unwrap_or_default();
                for item in inner.split(',') {
                    let item = item.trim();
                    let top = ident_at(item);
                    let second = item.strip_prefix(&format!("{top}::")).map(ident_at).unwrap_or_default();
                    found.push((top, second));
                }
            } else {
                let top = ident_at(after);
                let second = after.strip_prefix(&format!("{top}::")).map(ident_at).unwrap_or_default();
                found.push((top, second));
            }
            rest = after;
        }
        // `super::` from a file `depth` modules deep reaches the crate root after `depth` steps
        // (a `mod.rs` file is its folder's module).
        let mut rest = line;
        while let Some(at) = rest.find("super::") {
            let mut after = &rest[at..];
            let mut ups = 0;
            while let Some(next) = after.strip_prefix("super::") {
                ups += 1;
                after = next;
            }
            // Only a crate-level module name counts: inline `mod tests` blocks use `super::` for
            // their own file's items.
            if ups >= own.len() && layer_of(&ident_at(after)).is_some() {
                let top = ident_at(after);
                let second = after.strip_prefix(&format!("{top}::")).map(ident_at).unwrap_or_default();
                found.push((top, second));
            }
            rest = after;
        }
    }
    found.retain(|(top, _)| !top.is_empty() && top != "self");
    found
}

/// What a file may not import: an upward import, or `plan` reaching into `act` beyond `exec`.
fn violations(file: &str, own: &[String], text: &str) -> Vec<String> {
    let Some(me) = own.first() else { return Vec::new() };
    let Some(my_layer) = layer_of(me) else {
        return vec![format!("{file}: module {me} is in no layer of lib.rs's LAYERS")];
    };
    let mut bad = Vec::new();
    for (top, second) in imports(text, own) {
        match layer_of(&top) {
            // Items of lib.rs itself (LAYERS) are no module.
            None if top == "LAYERS" => {}
            None => bad.push(format!("{file}: imports crate::{top}, which is in no layer")),
            Some(layer) if layer > my_layer => {
                bad.push(format!("{file}: imports crate::{top} (layer {layer}) from layer {my_layer}"))
            }
            Some(_) if me == "plan" && top == "act" && second != "exec" => {
                bad.push(format!("{file}: plan imports act::{second}; it may only use act::exec"))
            }
            Some(_) => {}
        }
    }
    bad
}

fn source_texts() -> BTreeMap<String, (Vec<String>, String)> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let relative = path.strip_prefix(&src).ok()?.to_path_buf();
            let name = relative.display().to_string();
            // The crate root and the binary declare modules; this file names them all.
            if ["lib.rs", "main.rs", "layering.rs"].contains(&name.as_str()) {
                return None;
            }
            let text = std::fs::read_to_string(&path).ok()?;
            Some((name, (module_path(&relative), text)))
        })
        .collect()
}

#[test]
fn no_module_imports_a_higher_layer() {
    let files = source_texts();
    assert!(files.len() > 20, "found the sources: {:?}", files.keys());
    let bad: Vec<String> = files.iter().flat_map(|(name, (own, text))| violations(name, own, text)).collect();
    assert!(bad.is_empty(), "upward imports:\n{}", bad.join("\n"));
}

#[test]
fn the_checker_sees_upward_imports_in_every_form() {
    let own = |p: &str| module_path(Path::new(p));
    let flagged = |file: &str, text: &str| !violations(file, &own(file), text).is_empty();
    assert!(flagged("decide/mod.rs", "use crate::config::JoinAs;"));
    assert!(flagged("observe/peers.rs", "use crate::{error::Error, act::exec};"));
    assert!(flagged("act/membership.rs", "use super::super::sidecar::Settings;"));
    assert!(flagged("plan.rs", "use crate::act::bootstrap;"));
    assert!(flagged("identity.rs", "let x = crate::observed::Member::default();"));
    assert!(!flagged("plan.rs", "use crate::act::exec;"));
    assert!(!flagged("act/membership.rs", "use super::Step; // crate::cli in a comment"));
    assert!(!flagged("sidecar/probe.rs", "use crate::observe::cluster::{self, Access};"));
}

/// etcd's words, which only the cluster module maps (to `observed::Refusal`).
const ETCD_PHRASES: [&str; 6] = [
    "member not found",
    "already exists",
    "in sync",
    "can only promote",
    "too many learner",
    "unhealthy cluster",
];

#[test]
fn only_the_cluster_module_reads_etcds_error_text() {
    let mut bad = Vec::new();
    for (name, (_, text)) in source_texts() {
        if name == "observe/cluster.rs" {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = code(line).to_ascii_lowercase();
            let matches_text =
                code.contains(".contains(") || code.contains("starts_with(") || code.contains("==");
            if matches_text && ETCD_PHRASES.iter().any(|p| code.contains(p)) {
                bad.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(bad.is_empty(), "etcd's error text read outside observe/cluster.rs:\n{}", bad.join("\n"));
}

/// Crates of the edges (command line, I/O, the network) that the pure decision table never names.
const EDGE_CRATES: [&str; 5] = ["clap::", "tokio::", "etcd_client::", "hickory_resolver::", "nix::"];

#[test]
fn the_decision_table_names_no_crate_of_the_edges() {
    let mut bad = Vec::new();
    for (name, (_, text)) in source_texts() {
        if !name.starts_with("decide/") {
            continue;
        }
        for (n, line) in text.lines().enumerate() {
            let code = code(line);
            if EDGE_CRATES.iter().any(|c| code.contains(c)) {
                bad.push(format!("{name}:{}: {}", n + 1, line.trim()));
            }
        }
    }
    assert!(bad.is_empty(), "decide/ reaches for an edge crate:\n{}", bad.join("\n"));
}
