//! The README's tables as tests, so the docs cannot drift from the binary:
//! - the options tables: each flag and its `ETCD_BOOTSTRAP_` variable are in `--help` of the
//!   command the row names, with the default the row gives (or none where it gives none);
//! - the exit-code table: every documented code is produced by some case, and every case's code
//!   is documented (k8s/README's table lists the same codes);
//! - the bad-input tables are read by `bad_input.rs` and `backup.rs`, which run every row; the
//!   helpers here parse them and match a row's words against an error line;
//! - the binary size the README states is the one `bench/REPORT.md` measured.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use crate::bootstrap::bootstrap_bin;

/// A file of the project, as text.
pub fn project_file(path: &str) -> String {
    let full = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join(path);
    std::fs::read_to_string(&full).unwrap_or_else(|e| panic!("read {}: {e}", full.display()))
}

/// The rows of the first markdown table after the first line containing `marker` (header and
/// separator left out), each as its cells, trimmed.
pub fn table_after(text: &str, marker: &str) -> Vec<Vec<String>> {
    let mut lines = text.lines().skip_while(|l| !l.contains(marker));
    assert!(lines.next().is_some(), "no line with {marker:?}");
    let rows: Vec<Vec<String>> =
        lines.skip_while(|l| !l.starts_with('|')).take_while(|l| l.starts_with('|')).map(cells).collect();
    assert!(rows.len() > 2, "no table after {marker:?}");
    assert!(rows[1].iter().all(|c| c.chars().all(|ch| ch == '-' || ch == ':')), "{marker:?}: no separator");
    rows.into_iter().skip(2).collect()
}

/// The cells of one table line: split at `|` outside backticks.
fn cells(line: &str) -> Vec<String> {
    let inner = line.trim().trim_start_matches('|').trim_end_matches('|');
    let mut out = Vec::new();
    let mut cell = String::new();
    let mut in_code = false;
    for ch in inner.chars() {
        match ch {
            '`' => {
                in_code = !in_code;
                cell.push(ch);
            }
            '|' if !in_code => out.push(std::mem::take(&mut cell).trim().to_string()),
            _ => cell.push(ch),
        }
    }
    out.push(cell.trim().to_string());
    out
}

/// The text inside the backticks of `cell`, one item per pair.
pub fn code_spans(cell: &str) -> Vec<String> {
    cell.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

/// One documented bad input: the input cell (the key the tests find it by), the exit code and
/// the words of the error line.
#[derive(Debug, Clone)]
pub struct BadInputRow {
    pub input: String,
    pub exit: i32,
    pub says: String,
}

/// The bad-input table after `marker` in the README.
pub fn bad_input_rows(marker: &str) -> Vec<BadInputRow> {
    table_after(&project_file("README.md"), marker)
        .into_iter()
        .map(|row| {
            let [input, exit, says] = row.as_slice() else { panic!("a bad-input row has 3 cells: {row:?}") };
            let [says] = code_spans(says).try_into().unwrap_or_else(|_| panic!("one code span: {says}"));
            BadInputRow {
                input: input.clone(),
                exit: exit.parse().unwrap_or_else(|_| panic!("exit code of {input:?}: {exit}")),
                says,
            }
        })
        .collect()
}

/// The marker of the README's bad-input table of `run`.
pub const RUN_BAD_INPUT: &str = "### Bad input";
/// The marker of the README's bad-input table of `backup` and `--restore-from`.
pub const BACKUP_BAD_INPUT: &str = "Bad input, each one line on stderr (`backup`";

/// The row of `table` whose input is `input` (panics naming the table's inputs otherwise).
pub fn row<'a>(table: &'a [BadInputRow], input: &str) -> &'a BadInputRow {
    table.iter().find(|r| r.input == input).unwrap_or_else(|| {
        let inputs: Vec<&str> = table.iter().map(|r| r.input.as_str()).collect();
        panic!("the README has no bad-input row {input:?}; its rows: {inputs:#?}")
    })
}

/// Whether `line` says what `documented` says: its parts between `...` appear in it, in order
/// (backticks in the line are ignored: a cell cannot hold them).
pub fn says(line: &str, documented: &str) -> Result<(), String> {
    let line = line.replace('`', "");
    let mut from = 0;
    for part in documented.split("...").map(str::trim).filter(|p| !p.is_empty()) {
        match line.get(from..).and_then(|rest| rest.find(part)) {
            Some(at) => from += at + part.len(),
            None => return Err(format!("the error line lacks {part:?} (in order): {line}")),
        }
    }
    Ok(())
}

/// Checked against every row, whichever test runs it: each input is documented once.
pub fn assert_unique_inputs(rows: &[BadInputRow]) {
    let mut seen = BTreeSet::new();
    for r in rows {
        assert!(seen.insert(r.input.as_str()), "bad-input row {:?} is documented twice", r.input);
    }
}

#[test]
fn says_matches_the_parts_in_order() {
    assert!(says("error: alpha beta gamma", "alpha ... gamma").is_ok());
    assert!(says("error: gamma beta alpha", "alpha ... gamma").is_err());
    assert!(says("x from `etcd-bootstrap backup list u` y", "from ...backup list u").is_ok());
    assert!(says("anything", "...").is_ok());
    assert_eq!(cells("| `a|b` | 2 | c |"), ["`a|b`", "2", "c"]);
}

// ---------------------------------------------------------------------------------------------
// Options
// ---------------------------------------------------------------------------------------------

/// `etcd-bootstrap <command> --help`.
fn help(command: &str) -> String {
    let out = Command::new(bootstrap_bin())
        .args([command, "--help"])
        .env_clear()
        .output()
        .expect("run etcd-bootstrap --help");
    assert!(out.status.success(), "{command} --help: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// One option as `--help` shows it: its text from the flag to the next option.
fn help_entry<'a>(help: &'a str, flag: &str) -> Option<&'a str> {
    let lines: Vec<&str> = help.lines().collect();
    let start = lines.iter().position(|l| {
        let l = l.trim_start();
        l.starts_with(&format!("{flag} "))
            || l == flag
            || l.contains(&format!(", {flag} "))
            || l.ends_with(&format!(", {flag}"))
    })?;
    let end = lines[start + 1..]
        .iter()
        .position(|l| l.trim_start().starts_with('-'))
        .map_or(lines.len(), |i| start + 1 + i);
    let first = help.find(lines[start])?;
    let last = lines.get(end - 1).and_then(|l| help[first..].find(l).map(|at| first + at + l.len()))?;
    help.get(first..last)
}

/// The `[default: x]` of a help entry.
fn help_default(entry: &str) -> Option<String> {
    let flat = entry.split_whitespace().collect::<Vec<_>>().join(" ");
    let (_, rest) = flat.split_once("[default: ")?;
    rest.split_once(']').map(|(d, _)| d.to_string())
}

/// The commands a flag cell names: `--x (run, plan)`, else `fallback`.
fn commands_of(cell: &str, fallback: &[&'static str]) -> Vec<String> {
    match cell.split_once('(') {
        Some((_, rest)) => rest.trim_end_matches(')').split(',').map(|c| c.trim().to_string()).collect(),
        None => fallback.iter().map(|c| c.to_string()).collect(),
    }
}

fn check_options_table(marker: &str, fallback: &[&'static str]) -> usize {
    let rows = table_after(&project_file("README.md"), marker);
    let mut helps: BTreeMap<String, String> = BTreeMap::new();
    let mut problems = Vec::new();
    for row in &rows {
        let [flag_cell, var_cell, default_cell, _meaning] = row.as_slice() else {
            panic!("an options row has 4 cells: {row:?}")
        };
        let [flag] = code_spans(flag_cell).try_into().unwrap_or_else(|_| panic!("one flag: {flag_cell}"));
        let [var] = code_spans(var_cell).try_into().unwrap_or_else(|_| panic!("one variable: {var_cell}"));
        let spans = code_spans(default_cell);
        // A default that is one literal (`3`, `5m`) is clap's; any other text (none, `$POD_NAME`,
        // else the hostname) is worked out at run time, so --help shows no default.
        let literal = (spans.len() == 1 && *default_cell == format!("`{}`", spans[0]))
            .then(|| spans[0].clone())
            .filter(|d| !d.starts_with('$') && !d.contains('<'));
        for command in commands_of(flag_cell, fallback) {
            let text = helps.entry(command.clone()).or_insert_with(|| help(&command));
            let Some(entry) = help_entry(text, &flag) else {
                problems.push(format!("{command} --help has no {flag}"));
                continue;
            };
            if !entry.contains(&format!("[env: {var}=")) && !entry.contains(&format!("[env: {var}]")) {
                problems.push(format!("{command} {flag}: --help does not name {var}: {entry}"));
            }
            let shown = help_default(entry);
            if shown != literal {
                problems
                    .push(format!("{command} {flag}: the README says default {literal:?}, --help {shown:?}"));
            }
        }
    }
    assert!(
        problems.is_empty(),
        "the options table ({marker}) and --help disagree:\n{}",
        problems.join("\n")
    );
    rows.len()
}

#[test]
fn every_option_in_the_readme_is_in_help_with_its_variable_and_default() {
    let main =
        check_options_table("Every option can also be given as the variable", &["run", "plan", "sidecar"]);
    assert!(main >= 25, "{main} rows");
    let backup = check_options_table("Host names in `--endpoints` and the", &["backup"]);
    assert!(backup >= 6, "{backup} rows");
}

// ---------------------------------------------------------------------------------------------
// Exit codes
// ---------------------------------------------------------------------------------------------

/// The codes of an exit-code table (`130 / 143` and `126, 127` are two codes each).
fn documented_codes(text: &str, marker: &str) -> BTreeSet<i32> {
    table_after(text, marker)
        .iter()
        .flat_map(|row| {
            row[0]
                .split(['/', ','])
                .map(|c| c.trim().parse::<i32>().unwrap_or_else(|_| panic!("exit code {:?}", row[0])))
                .collect::<Vec<_>>()
        })
        .collect()
}

#[test]
fn every_documented_exit_code_comes_from_a_case_and_every_case_code_is_documented() {
    let readme = documented_codes(&project_file("README.md"), "## Exit codes");
    // The cases: every bad-input row of both README tables (run by bad_input.rs and backup.rs),
    // every case of bad_input.rs's own table, and the signal cases below.
    let mut produced: BTreeMap<i32, String> = BTreeMap::new();
    for r in bad_input_rows(RUN_BAD_INPUT).into_iter().chain(bad_input_rows(BACKUP_BAD_INPUT)) {
        produced.entry(r.exit).or_insert(r.input);
    }
    for (name, code) in crate::bad_input::case_codes() {
        produced.entry(code).or_insert(name.to_string());
    }
    for (code, name) in SIGNAL_CASES {
        produced.entry(*code).or_insert(name.to_string());
    }
    let undocumented: Vec<_> = produced.iter().filter(|(c, _)| !readme.contains(c)).collect();
    assert!(undocumented.is_empty(), "codes a case produces that the README does not list: {undocumented:?}");
    let unproduced: Vec<_> = readme.iter().filter(|c| !produced.contains_key(c)).collect();
    assert!(unproduced.is_empty(), "documented codes no case produces: {unproduced:?}");
    let k8s = documented_codes(&project_file("k8s/README.md"), "the container with back-off. Exit codes:");
    // k8s/README leaves out 0 (`plan`, which a pod does not run).
    let expected: BTreeSet<i32> = readme.iter().copied().filter(|c| *c != 0).collect();
    assert_eq!(k8s, expected, "k8s/README's exit codes and the README's");
}

/// The signal cases of [`a_signal_during_a_wait_exits_130_or_143`].
const SIGNAL_CASES: &[(i32, &str)] = &[(130, "SIGINT during a WAIT"), (143, "SIGTERM during a WAIT")];

#[test]
fn a_signal_during_a_wait_exits_130_or_143() {
    for (code, signal) in [(130, "INT"), (143, "TERM")] {
        let scratch = tempfile::tempdir().expect("scratch");
        let etcd = scratch.path().join("etcd");
        std::fs::write(&etcd, "#!/bin/sh\nexit 0\n").expect("fake etcd");
        std::fs::set_permissions(&etcd, std::os::unix::fs::PermissionsExt::from_mode(0o755)).expect("chmod");
        let mut child = Command::new(bootstrap_bin())
            .args(["--name", "etcd-0", "--wait-timeout", "5m", "--dns-server", "127.0.0.1:1"])
            .arg("--data-dir")
            .arg(scratch.path().join("data"))
            .arg("--etcd-binary")
            .arg(&etcd)
            .env_clear()
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn");
        // Wait for the WAIT to be logged: the handlers are installed by then.
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            use std::io::BufRead;
            for line in std::io::BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut seen = Vec::new();
        while !seen.iter().any(|l: &String| l.contains("decision=\"WAIT\"")) {
            let left = deadline.saturating_duration_since(Instant::now());
            match rx.recv_timeout(left) {
                Ok(line) => seen.push(line),
                Err(_) => {
                    let _ = child.kill();
                    panic!("no WAIT logged within 30s: {seen:#?}");
                }
            }
        }
        let status = Command::new("kill").args([format!("-{signal}"), child.id().to_string()]).status();
        assert!(status.is_ok_and(|s| s.success()), "kill -{signal}");
        let deadline = Instant::now() + Duration::from_secs(10);
        let exit = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status.code();
            }
            assert!(Instant::now() < deadline, "SIG{signal} did not end the WAIT within 10s");
            std::thread::sleep(Duration::from_millis(20));
        };
        assert_eq!(exit, Some(code), "SIG{signal}");
        assert!(SIGNAL_CASES.iter().any(|(c, _)| *c == code));
    }
}

// ---------------------------------------------------------------------------------------------
// The binary size
// ---------------------------------------------------------------------------------------------

/// The first number followed by " MiB" after `marker` in `text`.
fn mib_after(text: &str, marker: &str) -> f64 {
    let (_, rest) = text.split_once(marker).unwrap_or_else(|| panic!("no {marker:?}"));
    let (number, _) = rest.split_once(" MiB").unwrap_or_else(|| panic!("no MiB after {marker:?}"));
    let digits: String = number
        .chars()
        .rev()
        .take_while(|c| c.is_ascii_digit() || *c == '.')
        .collect::<Vec<_>>()
        .into_iter()
        .rev()
        .collect();
    digits.parse().unwrap_or_else(|_| panic!("no number before MiB after {marker:?}: {number:?}"))
}

#[test]
fn the_binary_size_in_the_readme_is_the_benchmarks() {
    let readme = mib_after(&project_file("README.md"), "prints for your build (about ");
    let bench = mib_after(&project_file("bench/REPORT.md"), "| binary under 8 MiB | ");
    assert!(
        (readme - bench).abs() < 0.5,
        "README says about {readme} MiB, bench/REPORT.md measured {bench} MiB"
    );
}
