//! Checks the module map of `lib.rs` rather than claiming it. Every source file is parsed (`syn`),
//! not read line by line, and every path in it is seen: `use` trees however nested or split over
//! lines, paths in expressions, types and patterns, and paths written inside macro calls.
//!
//! - Layers: a path that reaches a crate-level module (`crate::x`, `self::`/`super::` chains,
//!   resolved against the file's own module and its inline modules) names only its own layer or
//!   the layers below it, in the order of [`crate::LAYERS`]; `plan` uses nothing of `act` but
//!   `act::exec`.
//! - Pure modules ([`PURE`]): no file system, network, process or environment of `std`, no async
//!   runtime, no crate of the edges ([`EDGE_CRATES`]). Code under `#[cfg(test)]` is exempt: it
//!   never ships, and some tests compare against a client crate's constants.
//! - etcd's error words are read in one place only.
//!
//! Each rule has a self-test that plants violations as source text and shows each one caught.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use proc_macro2::{Delimiter, TokenStream, TokenTree};
use syn::visit::{self, Visit};

use crate::LAYERS;

/// The pure modules, as paths relative to `src/`: a folder (ending in `/`) or one file. The
/// decision table and what it reads, the pure policies of the sidecar and of backups, and the
/// base parsers. Every entry must exist, so a move shows here.
const PURE: &[&str] = &[
    "decide/",
    "observed.rs",
    "duration.rs",
    "size.rs",
    "identity.rs",
    "etcd_args.rs",
    "act/pacing.rs",
    "backup/location.rs",
    "backup/manifest.rs",
    "backup/segment.rs",
    "backup/credentials.rs",
    "backup/integrity.rs",
    "sidecar/policy/",
    "sidecar/liveness.rs",
];

/// Plain values of `std::net` (addresses), which a pure module may hold: they reach nothing.
const NET_VALUES: &[&str] = &["IpAddr", "Ipv4Addr", "Ipv6Addr", "SocketAddr", "SocketAddrV4", "SocketAddrV6"];

/// Parts of `std` that reach outside the process's memory, which a pure module never names.
const IMPURE_STD: &[&[&str]] = &[&["fs"], &["net"], &["process"], &["env"], &["os"], &["thread"]];

/// Crates of the edges: the async runtime, I/O, the network, the command line. A pure module names
/// none of them.
const EDGE_CRATES: &[&str] = &[
    "tokio",
    "tokio_rustls",
    "rustls",
    "etcd_client",
    "tonic",
    "hickory_resolver",
    "hickory_proto",
    "nix",
    "object_store",
    "reqwest",
    "clap",
    "futures_util",
    "tracing_subscriber",
];

/// One path seen in a file: its segments as written (a `use` tree flattened), and the same made
/// absolute when it starts at `crate`, `self` or `super` (`None` for paths of other crates and
/// for local names).
#[derive(Debug, Clone)]
struct Seen {
    written: Vec<String>,
    resolved: Option<Vec<String>>,
    /// Under `#[cfg(test)]`.
    test: bool,
}

/// A call seen in a file: the function's path (`fs::rename`) or the method's name (`.compact`).
#[derive(Debug, Clone)]
struct Call {
    name: Vec<String>,
    method: bool,
    test: bool,
}

/// What one file holds, as far as these checks look.
#[derive(Debug, Default)]
struct Scan {
    paths: Vec<Seen>,
    calls: Vec<Call>,
    /// Child modules declared as `#[cfg(test)] mod name;` (their files are test code).
    test_children: Vec<String>,
    /// The string literals outside test code, macro arguments included.
    strings: Vec<String>,
}

/// Walks one file's syntax tree.
struct Walker {
    /// The module the walker is in: the file's module path, then inline `mod`s.
    module: Vec<String>,
    /// How many `#[cfg(test)]` items enclose the walker (a test file starts at 1).
    test_depth: usize,
    scan: Scan,
}

fn is_cfg_test(attrs: &[syn::Attribute]) -> bool {
    attrs.iter().any(|attr| {
        attr.path().is_ident("cfg")
            && attr.meta.require_list().is_ok_and(|list| list.tokens.to_string() == "test")
    })
}

fn item_attrs(item: &syn::Item) -> &[syn::Attribute] {
    use syn::Item;
    match item {
        Item::Const(i) => &i.attrs,
        Item::Enum(i) => &i.attrs,
        Item::ExternCrate(i) => &i.attrs,
        Item::Fn(i) => &i.attrs,
        Item::ForeignMod(i) => &i.attrs,
        Item::Impl(i) => &i.attrs,
        Item::Macro(i) => &i.attrs,
        Item::Mod(i) => &i.attrs,
        Item::Static(i) => &i.attrs,
        Item::Struct(i) => &i.attrs,
        Item::Trait(i) => &i.attrs,
        Item::TraitAlias(i) => &i.attrs,
        Item::Type(i) => &i.attrs,
        Item::Union(i) => &i.attrs,
        Item::Use(i) => &i.attrs,
        _ => &[],
    }
}

impl Walker {
    fn test(&self) -> bool {
        self.test_depth > 0
    }

    /// `crate::a::b` -> [a, b]; `self::x` and `super::x` from the walker's module. A `super`
    /// beyond the crate root resolves to `["super"]`, which is in no layer.
    fn resolve(&self, written: &[String]) -> Option<Vec<String>> {
        let first = written.first()?;
        match first.as_str() {
            "crate" => Some(written[1..].to_vec()),
            "self" => Some(self.module.iter().chain(&written[1..]).cloned().collect()),
            "super" => {
                let ups = written.iter().take_while(|s| *s == "super").count();
                if ups > self.module.len() {
                    return Some(vec!["super".into()]);
                }
                let base = &self.module[..self.module.len() - ups];
                Some(base.iter().chain(&written[ups..]).cloned().collect())
            }
            _ => None,
        }
    }

    fn saw(&mut self, written: Vec<String>) {
        if written.is_empty() {
            return;
        }
        let resolved = self.resolve(&written);
        self.scan.paths.push(Seen { written, resolved, test: self.test() });
    }

    fn use_tree(&mut self, prefix: &mut Vec<String>, tree: &syn::UseTree) {
        match tree {
            syn::UseTree::Path(p) => {
                prefix.push(p.ident.to_string());
                self.use_tree(prefix, &p.tree);
                prefix.pop();
            }
            syn::UseTree::Name(n) => {
                let mut path = prefix.clone();
                if n.ident != "self" || path.is_empty() {
                    path.push(n.ident.to_string());
                }
                self.saw(path);
            }
            syn::UseTree::Rename(r) => {
                let mut path = prefix.clone();
                if r.ident != "self" || path.is_empty() {
                    path.push(r.ident.to_string());
                }
                self.saw(path);
            }
            syn::UseTree::Glob(_) => {
                let mut path = prefix.clone();
                path.push("*".into());
                self.saw(path);
            }
            syn::UseTree::Group(g) => {
                for tree in &g.items {
                    self.use_tree(prefix, tree);
                }
            }
        }
    }

    /// Paths and calls written inside a macro call, which `syn` leaves as tokens: every run of
    /// `ident :: ident ...` is a path, and `ident(...)` after a `.` or in a path is a call.
    fn macro_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut i = 0;
        while i < tokens.len() {
            match &tokens[i] {
                TokenTree::Group(g) => {
                    self.macro_tokens(g.stream());
                    i += 1;
                }
                TokenTree::Ident(ident) => {
                    let after_dot =
                        i > 0 && matches!(&tokens[i - 1], TokenTree::Punct(p) if p.as_char() == '.');
                    let mut path = vec![ident.to_string()];
                    let mut j = i + 1;
                    while is_path_sep(&tokens, j) {
                        match tokens.get(j + 2) {
                            Some(TokenTree::Ident(next)) => {
                                path.push(next.to_string());
                                j += 3;
                            }
                            _ => break,
                        }
                    }
                    let called = matches!(tokens.get(j), Some(TokenTree::Group(g)) if g.delimiter() == Delimiter::Parenthesis);
                    if called {
                        let method = after_dot && path.len() == 1;
                        self.scan.calls.push(Call { name: path.clone(), method, test: self.test() });
                    }
                    if !after_dot {
                        self.saw(path);
                    }
                    i = j;
                }
                TokenTree::Literal(lit) => {
                    if let Ok(text) = syn::parse_str::<syn::LitStr>(&lit.to_string()) {
                        self.lit_str(&text);
                    }
                    i += 1;
                }
                TokenTree::Punct(_) => i += 1,
            }
        }
    }
}

impl Walker {
    fn lit_str(&mut self, lit: &syn::LitStr) {
        if !self.test() {
            self.scan.strings.push(lit.value());
        }
    }
}

/// `::` at `tokens[at..at + 2]`.
fn is_path_sep(tokens: &[TokenTree], at: usize) -> bool {
    matches!(
        (tokens.get(at), tokens.get(at + 1)),
        (Some(TokenTree::Punct(a)), Some(TokenTree::Punct(b))) if a.as_char() == ':' && b.as_char() == ':'
    )
}

fn segments(path: &syn::Path) -> Vec<String> {
    path.segments.iter().map(|s| s.ident.to_string()).collect()
}

impl<'ast> Visit<'ast> for Walker {
    fn visit_item(&mut self, item: &'ast syn::Item) {
        let test = is_cfg_test(item_attrs(item));
        if test {
            if let syn::Item::Mod(m) = item {
                if m.content.is_none() {
                    self.scan.test_children.push(m.ident.to_string());
                }
            }
            self.test_depth += 1;
        }
        visit::visit_item(self, item);
        if test {
            self.test_depth -= 1;
        }
    }

    fn visit_item_mod(&mut self, item: &'ast syn::ItemMod) {
        if item.content.is_some() {
            self.module.push(item.ident.to_string());
            visit::visit_item_mod(self, item);
            self.module.pop();
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        self.use_tree(&mut Vec::new(), &item.tree);
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        self.saw(segments(path));
        visit::visit_path(self, path);
    }

    fn visit_expr_call(&mut self, call: &'ast syn::ExprCall) {
        if let syn::Expr::Path(p) = &*call.func {
            let test = self.test();
            self.scan.calls.push(Call { name: segments(&p.path), method: false, test });
        }
        visit::visit_expr_call(self, call);
    }

    fn visit_expr_method_call(&mut self, call: &'ast syn::ExprMethodCall) {
        let test = self.test();
        self.scan.calls.push(Call { name: vec![call.method.to_string()], method: true, test });
        visit::visit_expr_method_call(self, call);
    }

    fn visit_visibility(&mut self, _: &'ast syn::Visibility) {
        // `pub(crate)`, `pub(super)`, `pub(in crate::a)` restrict who sees an item: no use of one.
    }

    fn visit_attribute(&mut self, attr: &'ast syn::Attribute) {
        // Doc comments are prose, not code: only other attributes are looked into.
        if !attr.path().is_ident("doc") {
            visit::visit_attribute(self, attr);
        }
    }

    fn visit_lit_str(&mut self, lit: &'ast syn::LitStr) {
        self.lit_str(lit);
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.macro_tokens(mac.tokens.clone());
        visit::visit_macro(self, mac);
    }
}

/// Parse one file's text as the module `module` (a test file when `test`).
fn scan(module: &[String], text: &str, test: bool) -> Result<Scan, String> {
    let file = syn::parse_file(text).map_err(|e| format!("does not parse: {e}"))?;
    let mut walker = Walker { module: module.to_vec(), test_depth: usize::from(test), scan: Scan::default() };
    walker.visit_file(&file);
    Ok(walker.scan)
}

/// The layer of a module path: that of the longest prefix of it that `LAYERS` lists (so
/// `act::archive` has a layer of its own, below `act`'s), if any.
fn layer_of(path: &[String]) -> Option<usize> {
    let mut best: Option<(usize, usize)> = None;
    for (layer, names) in LAYERS.iter().enumerate() {
        for name in *names {
            let parts: Vec<&str> = name.split("::").collect();
            let prefix = parts.len() <= path.len() && parts.iter().zip(path).all(|(a, b)| *a == b);
            if prefix && best.is_none_or(|(len, _)| parts.len() > len) {
                best = Some((parts.len(), layer));
            }
        }
    }
    best.map(|(_, layer)| layer)
}

/// The module path of a file relative to `src/`: `act/membership.rs` -> [act, membership],
/// `observe/datadir/mod.rs` -> [observe, datadir].
fn module_path(relative: &str) -> Vec<String> {
    let mut parts: Vec<String> = relative.split('/').map(str::to_string).collect();
    if let Some(last) = parts.pop() {
        let stem = last.trim_end_matches(".rs");
        if stem != "mod" {
            parts.push(stem.to_string());
        }
    }
    parts
}

/// What a file may not import: an upward path, or `plan` reaching into `act` beyond `exec`.
fn layer_violations(file: &str, text: &str) -> Vec<String> {
    let own = module_path(file);
    let Some(me) = own.first() else { return Vec::new() };
    let Some(my_layer) = layer_of(&own) else {
        return vec![format!("{file}: module {me} is in no layer of lib.rs's LAYERS")];
    };
    let found = match scan(&own, text, false) {
        Ok(found) => found,
        Err(e) => return vec![format!("{file}: {e}")],
    };
    let mut bad = Vec::new();
    for seen in found.paths {
        let Some(resolved) = seen.resolved else { continue };
        let shown = format!("crate::{}", resolved.join("::"));
        let Some(top) = resolved.first() else {
            bad.push(format!("{file}: `{}` names the crate root itself", seen.written.join("::")));
            continue;
        };
        match layer_of(&resolved) {
            // Items of lib.rs itself (LAYERS) are no module.
            None if top == "LAYERS" => {}
            None if top == "*" => bad.push(format!("{file}: a glob of the crate root imports every layer")),
            None => bad.push(format!("{file}: `{shown}` names {top}, which is in no layer")),
            Some(layer) if layer > my_layer => {
                bad.push(format!("{file}: `{shown}` (layer {layer}) from layer {my_layer}"))
            }
            Some(_) if me == "plan" && top == "act" && resolved.get(1).is_some_and(|s| s != "exec") => {
                bad.push(format!("{file}: plan names `{shown}`; it may only use act::exec"))
            }
            Some(_) => {}
        }
    }
    bad
}

/// Whether `file` (relative to `src/`) is one of the pure modules.
fn is_pure(file: &str) -> bool {
    PURE.iter().any(|p| if p.ends_with('/') { file.starts_with(p) } else { file == *p })
}

/// Whether a path of this crate lands in a pure module (or the one error type, which all share).
fn pure_module(resolved: &[String]) -> bool {
    let pure_paths = PURE.iter().map(|p| module_path(p.trim_end_matches('/')));
    resolved.first().is_some_and(|top| top == "error" || top == "LAYERS")
        || pure_paths.into_iter().any(|p| resolved.starts_with(&p))
}

/// What a pure file may not name: an impure part of `std`, a crate of the edges, or a module of
/// this crate that is not pure, outside test code. A glob of `std` or a renamed `std` would hide such a path: they count too.
fn purity_violations(file: &str, text: &str, test_file: bool) -> Vec<String> {
    let found = match scan(&module_path(file), text, test_file) {
        Ok(found) => found,
        Err(e) => return vec![format!("{file}: {e}")],
    };
    let mut bad = Vec::new();
    for seen in found.paths.iter().filter(|s| !s.test) {
        if let Some(resolved) = &seen.resolved {
            if !pure_module(resolved) {
                bad.push(format!(
                    "{file}: a pure module names `crate::{}`, which is not pure",
                    resolved.join("::")
                ));
            }
            continue;
        }
        let written: Vec<&str> = seen.written.iter().map(String::as_str).collect();
        let after_std = match written.as_slice() {
            ["std" | "core" | "alloc", rest @ ..] => Some(rest),
            _ => None,
        };
        let impure = match after_std {
            Some([] | ["*"]) => true,
            Some(["net", addr, ..]) if NET_VALUES.contains(addr) => false,
            Some(rest) => IMPURE_STD.iter().any(|p| rest.starts_with(p)),
            None => written.first().is_some_and(|first| EDGE_CRATES.contains(first)),
        };
        if impure {
            bad.push(format!("{file}: a pure module names `{}`", written.join("::")));
        }
    }
    bad
}

/// etcd-client's calls that change the cluster, the data or the alarms.
const ETCD_WRITES: &[&str] =
    &["member_add", "member_remove", "member_update", "member_promote", "defragment", "compact"];

/// File system calls that change something.
const FS_WRITES: &[&str] = &[
    "rename",
    "renameat2",
    "remove_file",
    "remove_dir",
    "remove_dir_all",
    "create_dir",
    "create_dir_all",
    "hard_link",
    "set_permissions",
];

/// The writes a file of `observe/` makes: an etcd call that changes the cluster (alarm disarm
/// included), or a file system call that changes the data dir. Test code may write its fixtures.
fn write_violations(file: &str, text: &str) -> Vec<String> {
    let found = match scan(&module_path(file), text, false) {
        Ok(found) => found,
        Err(e) => return vec![format!("{file}: {e}")],
    };
    let mut bad = Vec::new();
    for call in found.calls.iter().filter(|c| !c.test) {
        let Some(last) = call.name.last().map(String::as_str) else { continue };
        let before = call.name.len().checked_sub(2).and_then(|i| call.name.get(i)).map(String::as_str);
        let etcd_write = ETCD_WRITES.contains(&last);
        let fs_write = !call.method
            && (FS_WRITES.contains(&last)
                || (["write", "copy"].contains(&last) && before == Some("fs"))
                || (last == "create" && before == Some("File")));
        if etcd_write || fs_write {
            bad.push(format!("{file}: calls `{}`, a write", call.name.join("::")));
        }
    }
    for seen in found.paths.iter().filter(|s| !s.test) {
        if seen.written.windows(2).any(|w| w[0] == "AlarmAction" && w[1] == "Deactivate")
            || seen.written.last().is_some_and(|s| s == "OpenOptions")
        {
            bad.push(format!("{file}: names `{}`, a write", seen.written.join("::")));
        }
    }
    bad
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

/// Every source file but the crate roots and this one, by path relative to `src/`.
fn source_texts() -> BTreeMap<String, String> {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let mut files = Vec::new();
    sources(&src, &mut files);
    files
        .into_iter()
        .filter_map(|path| {
            let name = path.strip_prefix(&src).ok()?.to_string_lossy().into_owned();
            // The crate root and the binary declare modules; this file names them all.
            if ["lib.rs", "main.rs", "layering.rs"].contains(&name.as_str()) {
                return None;
            }
            let text = std::fs::read_to_string(&path).unwrap();
            Some((name, text))
        })
        .collect()
}

/// The files declared as `#[cfg(test)] mod x;` by their parents: test code as a whole.
fn test_files(files: &BTreeMap<String, String>) -> Vec<String> {
    let mut out = Vec::new();
    for (name, text) in files {
        let Ok(found) = scan(&module_path(name), text, false) else { continue };
        let dir = match name.strip_suffix("mod.rs") {
            Some(folder) => folder.to_string(),
            None => format!("{}/", name.trim_end_matches(".rs")),
        };
        for child in found.test_children {
            out.push(format!("{dir}{child}.rs"));
            out.push(format!("{dir}{child}/mod.rs"));
        }
    }
    out
}

#[test]
fn no_module_names_a_higher_layer() {
    let files = source_texts();
    assert!(files.len() > 20, "found the sources: {:?}", files.keys());
    let bad: Vec<String> = files.iter().flat_map(|(name, text)| layer_violations(name, text)).collect();
    assert!(bad.is_empty(), "upward paths:\n{}", bad.join("\n"));
}

#[test]
fn the_pure_modules_name_no_io_and_no_crate_of_the_edges() {
    let files = source_texts();
    let missing: Vec<&&str> =
        PURE.iter().filter(|p| !files.keys().any(|f| is_pure(f) && f.starts_with(**p))).collect();
    assert!(missing.is_empty(), "pure modules listed in layering.rs but not found: {missing:?}");
    let tests = test_files(&files);
    let bad: Vec<String> = files
        .iter()
        .filter(|(name, _)| is_pure(name))
        .flat_map(|(name, text)| purity_violations(name, text, tests.contains(name)))
        .collect();
    assert!(bad.is_empty(), "I/O in pure modules:\n{}", bad.join("\n"));
}

#[test]
fn the_layer_check_catches_every_form_of_an_upward_path() {
    let flagged = |file: &str, text: &str| !layer_violations(file, text).is_empty();
    // The forms a line-by-line reading missed: a nested, multi-line `use crate::{…}` ...
    assert!(flagged(
        "decide/mod.rs",
        "use crate::{\n    error::Error,\n    sidecar::{\n        learners,\n    },\n};"
    ));
    // ... a fully qualified path in an expression, in a type, in a pattern, in a macro call ...
    assert!(flagged("decide/joiners.rs", "fn f() { crate::act::bootstrap(); }"));
    assert!(flagged("decide/joiners.rs", "fn f(_: &crate::context::Context) {}"));
    assert!(flagged("decide/joiners.rs", "fn f(x: u8) { if let crate::cli::Command::Run = x {} }"));
    assert!(flagged("decide/joiners.rs", "fn f() { let _ = format!(\"{}\", crate::act::x()); }"));
    assert!(flagged("decide/joiners.rs", "fn f() { assert!(crate :: sidecar :: up()); }"));
    // ... `super` chains out of the file's module, also from an inline module ...
    assert!(flagged("act/membership.rs", "use super::super::sidecar::Settings;"));
    assert!(flagged("observe/dns.rs", "mod inner { fn f() { super::super::super::act::go(); } }"));
    // ... an import split over `self`, globs and renames, and test code too.
    assert!(flagged("observe/peers.rs", "use crate::{error::Error, act::{self}};"));
    assert!(flagged("decide/mod.rs", "use crate::sidecar::*;"));
    assert!(flagged("decide/mod.rs", "use crate::*;"));
    assert!(flagged("decide/mod.rs", "use crate::plan as p;"));
    assert!(flagged("decide/mod.rs", "#[cfg(test)] mod tests { use crate::cli; }"));
    assert!(flagged("plan.rs", "use crate::act::bootstrap;"));
    assert!(flagged("plan.rs", "fn f() { crate::act::membership::add(); }"));
    assert!(flagged("identity.rs", "fn f() { let x = crate::observed::Member::default(); }"));
    assert!(flagged("nowhere.rs", "fn f() {}"));
    // A module with a layer of its own below its parent's: reachable from below, and it reaches
    // only below itself.
    assert!(flagged("backup/restore.rs", "use crate::act::etcd_calls;"));
    assert!(flagged("backup/restore.rs", "use crate::act;"));
    assert!(flagged("act/archive.rs", "use super::membership;"));
    assert!(flagged("act/archive.rs", "use crate::backup::restore;"));
    assert!(flagged("decide/mod.rs", "this is not rust {"));
    // What is allowed stays allowed: the own layer and those below, comments and strings.
    let clean = |file: &str, text: &str| layer_violations(file, text).is_empty();
    assert!(clean("plan.rs", "use crate::act::exec;"));
    assert!(clean("backup/restore.rs", "fn f() { crate::act::archive::archive_member(d, 1); }"));
    assert!(clean("act/membership.rs", "use super::{archive, etcd_calls};"));
    assert!(clean("act/membership.rs", "use super::Step; // crate::cli in a comment"));
    assert!(clean("act/membership.rs", "fn f() { let s = \"crate::sidecar::x\"; }"));
    assert!(clean("sidecar/probe.rs", "use crate::observe::cluster::{self, Access};"));
    assert!(clean("decide/mod.rs", "mod t { use super::super::observed::Member; use self::x::Y; }"));
    assert!(clean("decide/mod.rs", "use std::fmt; fn f() { crate::LAYERS.len(); }"));
    assert!(clean(
        "decide/mod.rs",
        "pub(crate) fn f() {} pub(super) struct S; pub(in crate::decide) fn g() {}"
    ));
}

#[test]
fn the_purity_check_catches_io_in_a_pure_module() {
    let flagged = |file: &str, text: &str| !purity_violations(file, text, false).is_empty();
    assert!(flagged("decide/mod.rs", "use std::fs;"));
    assert!(flagged("decide/mod.rs", "use std::{collections::BTreeMap, fs::read};"));
    assert!(flagged("decide/mod.rs", "fn f() { let _ = std::fs::read(\"x\"); }"));
    assert!(flagged("decide/mod.rs", "fn f() { let _ = ::std::fs::read(\"x\"); }"));
    assert!(flagged("decide/mod.rs", "fn f() { println!(\"{:?}\", std::fs::read(\"x\")); }"));
    assert!(flagged("decide/mod.rs", "use std::*;"));
    assert!(flagged("decide/mod.rs", "use std as s;"));
    assert!(flagged("decide/restore.rs", "fn f(_: std::net::TcpStream) {}"));
    assert!(flagged("decide/restore.rs", "fn f() { std::process::exit(1) }"));
    assert!(flagged("sidecar/policy/removal.rs", "use tokio::time::sleep;"));
    assert!(flagged("sidecar/policy/nospace.rs", "async fn f() { tokio::time::sleep(d).await }"));
    assert!(flagged("sidecar/policy/learners.rs", "fn f(e: etcd_client::Error) {}"));
    assert!(flagged("observed.rs", "fn f(c: tonic::Code) {}"));
    assert!(flagged("sidecar/policy/learners.rs", "use crate::observe::cluster::Access;"));
    assert!(flagged("sidecar/policy/defrag.rs", "use super::super::jobs::probe;"));
    for edge in EDGE_CRATES {
        assert!(flagged("decide/mod.rs", &format!("use {edge}::X;")), "{edge}");
    }
    let clean = |file: &str, text: &str| purity_violations(file, text, false).is_empty();
    assert!(clean("decide/mod.rs", "use std::collections::BTreeMap; use std::time::Duration;"));
    assert!(clean("sidecar/policy/presence.rs", "use std::net::IpAddr; fn f(_: std::net::SocketAddr) {}"));
    assert!(flagged("sidecar/policy/presence.rs", "use std::net::{IpAddr, TcpStream};"));
    assert!(clean("decide/mod.rs", "#[cfg(test)] mod tests { use tokio::time::sleep; }"));
    assert!(clean("sidecar/policy/nospace.rs", "use super::{choose, Skip}; use crate::error::Error;"));
    assert!(clean("decide/mod.rs", "use crate::observed::Member; use self::answers::x;"));
    assert!(purity_violations("decide/tests.rs", "use std::fs;", true).is_empty());
}

#[test]
fn observe_calls_no_write() {
    let bad: Vec<String> = source_texts()
        .iter()
        .filter(|(name, _)| name.starts_with("observe/"))
        .flat_map(|(name, text)| write_violations(name, text))
        .collect();
    assert!(bad.is_empty(), "writes in observe/ (they belong in act/):\n{}", bad.join("\n"));
}

#[test]
fn the_write_check_catches_each_write() {
    let flagged = |text: &str| !write_violations("observe/cluster.rs", text).is_empty();
    assert!(flagged("async fn f(c: &mut C) { c.cluster_client().member_add(urls, None).await; }"));
    assert!(flagged("async fn f(c: &mut C) { c.member_remove(1).await; }"));
    assert!(flagged("async fn f(c: &mut C) { c.member_update(1, urls).await; }"));
    assert!(flagged("async fn f(c: &mut C) { c.member_promote(1).await; }"));
    assert!(flagged("async fn f(c: &mut C) { within(t, \"d\", c.defragment()).await; }"));
    assert!(flagged("async fn f(c: &mut C) { c.compact(5, None).await; }"));
    assert!(flagged("async fn f(c: &mut C) { c.alarm(AlarmAction::Deactivate, t, None).await; }"));
    assert!(flagged("fn f() { tokio::select! { _ = c.defragment() => {} } }"));
    assert!(flagged("fn f() { Client::compact(&mut c, 5, None); }"));
    assert!(flagged("fn f() { std::fs::rename(a, b); }"));
    assert!(flagged("fn f() { fs::write(a, b); }"));
    assert!(flagged("fn f() { renameat2(AT_FDCWD, a, AT_FDCWD, b, flags); }"));
    assert!(flagged("fn f() { File::create(a); }"));
    let clean = |text: &str| write_violations("observe/cluster.rs", text).is_empty();
    assert!(clean("async fn f(c: &mut C) { c.member_list().await; c.status().await; }"));
    assert!(clean("async fn f(c: &mut C) { c.alarm(AlarmAction::Get, AlarmType::None, None).await; }"));
    assert!(clean("fn f() { writeln!(out, \"compact\"); }"));
}

/// etcd's words, which only `observed` maps (to `observed::Refusal`, by the gRPC code and etcd's
/// exact message). A string literal holding any of them elsewhere is a second reading of etcd's
/// text.
const ETCD_PHRASES: [&str; 8] = [
    "etcdserver:",
    "member not found",
    "already exists",
    "in sync with leader",
    "can only promote",
    "too many learner",
    "unhealthy cluster",
    "has been compacted",
];

/// The string literals of `text` (outside test code) that hold one of etcd's phrases.
fn etcd_words(file: &str, text: &str) -> Vec<String> {
    let found = match scan(&module_path(file), text, false) {
        Ok(found) => found,
        Err(e) => return vec![format!("{file}: {e}")],
    };
    found
        .strings
        .iter()
        .filter(|s| ETCD_PHRASES.iter().any(|p| s.to_ascii_lowercase().contains(p)))
        .map(|s| format!("{file}: {s:?}"))
        .collect()
}

#[test]
fn only_observed_holds_etcds_error_text() {
    let tests = test_files(&source_texts());
    let bad: Vec<String> = source_texts()
        .iter()
        .filter(|(name, _)| name.as_str() != "observed.rs" && !tests.contains(name))
        .flat_map(|(name, text)| etcd_words(name, text))
        .collect();
    assert!(bad.is_empty(), "etcd's error text outside observed.rs:\n{}", bad.join("\n"));
}

#[test]
fn the_etcd_words_check_sees_every_literal() {
    let flagged = |text: &str| !etcd_words("observe/cluster.rs", text).is_empty();
    assert!(flagged("fn f(m: &str) -> bool { m.contains(\"member not found\") }"));
    assert!(flagged("fn f(m: &str) -> bool { m == \"etcdserver: unhealthy cluster\" }"));
    assert!(flagged("fn f(m: &str) { assert!(m.ends_with(\"Peer URLs already exists\")); }"));
    assert!(flagged("const P: &str = \"can only promote\";"));
    assert!(!flagged("#[cfg(test)] mod tests { const M: &str = \"etcdserver: member not found\"; }"));
    assert!(!flagged("// member not found\nfn f() {}"));
    assert!(!flagged("/// etcd says \"member not found\"\nfn f() {}"));
}
