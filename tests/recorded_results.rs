//! The measurements in docs/benchmarks.md are written by the commands that make them
//! (`tools/record.py`), not by hand: every table and every output above the history section sits
//! in a recorded block whose header names its command, date, adapter and driver (as must every
//! recorded block of docs/); and record.py rewrites only the blocks asked for, and nothing when a
//! command fails.
//!
//! The second test runs tools/record.py with Python 3 and this build's sn-wgpu on the Vulkan
//! adapter the other GPU tests use (lavapipe on a machine without a GPU).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

struct Block {
    name: String,
    class: String,
    command: String,
    /// 1-based line of the opening comment.
    line: usize,
    body: Vec<String>,
}

/// The recorded blocks of a document and, for every other line, whether it is outside all blocks.
fn parse(text: &str) -> (Vec<Block>, Vec<(usize, String)>) {
    let mut blocks = Vec::new();
    let mut outside = Vec::new();
    let mut current: Option<Block> = None;
    for (i, line) in text.lines().enumerate() {
        if let Some(block) = current.as_mut() {
            if line == format!("<!-- end record {} -->", block.name) {
                blocks.push(current.take().unwrap());
            } else {
                block.body.push(line.to_string());
            }
        } else if let Some(rest) = line.strip_prefix("<!-- record ").and_then(|r| r.strip_suffix(" -->")) {
            let (head, command) = rest.split_once(": ").unwrap_or_else(|| panic!("line {}: no `: COMMAND`", i + 1));
            let words: Vec<&str> = head.split(' ').collect();
            assert_eq!(words.len(), 3, "line {}: `<!-- record NAME FORMAT CLASS: COMMAND -->`", i + 1);
            current = Some(Block {
                name: words[0].into(),
                class: words[2].into(),
                command: command.into(),
                line: i + 1,
                body: Vec::new(),
            });
        } else {
            outside.push((i + 1, line.to_string()));
        }
    }
    assert!(current.is_none(), "a record block is not closed");
    (blocks, outside)
}

fn is_date(s: &str) -> bool {
    let b = s.as_bytes();
    b.len() == 10 && b[4] == b'-' && b[7] == b'-' && s.chars().filter(|c| c.is_ascii_digit()).count() == 8
}

#[test]
fn benchmark_results_are_recorded_with_what_gave_them() {
    let path = root().join("docs/benchmarks.md");
    let text = std::fs::read_to_string(&path).unwrap();
    let history = text.find("\n## History").expect("docs/benchmarks.md has a `## History` section") + 1;
    let history_line = text[..history].lines().count() + 1;
    let (blocks, outside) = parse(&text);
    assert!(blocks.iter().any(|b| b.class == "cpu"), "no block is measured on a CPU adapter");

    let mut bad = Vec::new();
    for (n, line) in &outside {
        let result_like = line.starts_with('|') || line.trim_start().starts_with("```text");
        if *n < history_line && result_like {
            bad.push(format!("line {n}: a table or output outside a recorded block: {line}"));
        }
    }
    for b in &blocks {
        if b.line > history_line {
            bad.push(format!("line {}: block {} is inside the history", b.line, b.name));
        }
        let first = b.body.iter().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
        if first.starts_with("*Not recorded yet.*") {
            // A CPU adapter can always be measured, so its blocks must hold a measurement.
            if b.class != "gpu" {
                bad.push(format!("line {}: block {} ({}) is not recorded", b.line, b.name, b.class));
            }
            continue;
        }
        let header = format!("*Command:* `{}`. *Date:* ", b.command);
        let Some(rest) = first.strip_prefix(&header) else {
            bad.push(format!("line {}: block {} does not start with `{header}`", b.line, b.name));
            continue;
        };
        if !is_date(&rest[..rest.len().min(10)]) || !rest.contains("*Adapter:* ") || !rest.contains("*Driver:* ") {
            bad.push(format!("line {}: block {}'s header lacks its date, adapter or driver: {first}", b.line, b.name));
        }
        if b.body.len() < 3 {
            bad.push(format!("line {}: block {} holds no output", b.line, b.name));
        }
    }
    let history_text = &text[history..];
    for section in history_text.split("\n### ").skip(1) {
        if !section.contains("*Date:*") {
            bad.push(format!("history section `{}` says no date", section.lines().next().unwrap()));
        }
    }
    assert!(bad.is_empty(), "{}:\n{}", path.display(), bad.join("\n"));
}

#[test]
fn every_recorded_block_of_the_docs_says_what_gave_it() {
    let mut bad = Vec::new();
    for entry in std::fs::read_dir(root().join("docs")).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_none_or(|e| e != "md") {
            continue;
        }
        let (blocks, _) = parse(&std::fs::read_to_string(&path).unwrap());
        for b in blocks {
            let first = b.body.iter().find(|l| !l.trim().is_empty()).cloned().unwrap_or_default();
            let header = format!("*Command:* `{}`. *Date:* ", b.command);
            let recorded = first.starts_with(&header) && first.contains("*Adapter:* ") && first.contains("*Driver:* ");
            if !(recorded || b.class == "gpu" && first.starts_with("*Not recorded yet.*")) {
                bad.push(format!("{}:{}: block {}: {first}", path.display(), b.line, b.name));
            }
        }
    }
    assert!(bad.is_empty(), "recorded blocks without the line that says what gave them:\n{}", bad.join("\n"));
}

fn record(doc: &Path, names: &[&str]) -> Output {
    Command::new("python3")
        .arg(root().join("tools/record.py"))
        .arg(doc)
        .args(names)
        .env("SN_WGPU_BIN", env!("CARGO_BIN_EXE_sn-wgpu"))
        .output()
        .expect("running python3 tools/record.py (install Python 3)")
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

const DOC: &str = "# Results

Text before.

<!-- record sum text any: echo \"sum $((1 + 2))\" -->
old sum
<!-- end record sum -->

| a hand table in between |

<!-- record table markdown any: printf '| x |\\n| --- |\\n| 1 |\\n' -->
old table
<!-- end record table -->

<!-- record scratch text any: touch \"$SCRATCH/made\" && ls \"$SCRATCH\" -->
<!-- end record scratch -->

<!-- record on-gpu text gpu: echo gpu -->
*Not recorded yet.*
<!-- end record on-gpu -->

Text after.
";

#[test]
fn record_rewrites_only_the_blocks_asked_for_and_nothing_on_failure() {
    let dir = common::temp_dir("record");
    let doc = dir.join("results.md");
    std::fs::write(&doc, DOC).unwrap();

    let out = record(&doc, &["sum"]);
    assert!(out.status.success(), "record.py sum failed:\n{}", stderr(&out));
    let text = std::fs::read_to_string(&doc).unwrap();
    let (blocks, outside) = parse(&text);
    let sum = &blocks[0];
    assert!(sum.body[0].starts_with("*Command:* `echo \"sum $((1 + 2))\"`. *Date:* "), "{:?}", sum.body);
    assert!(sum.body[0].contains("*Adapter:* ") && sum.body[0].contains("*Driver:* "), "{}", sum.body[0]);
    assert_eq!(sum.body[1..], ["", "```text", "sum 3", "```"].map(String::from));
    assert_eq!(blocks[1].body, ["old table"], "a block not asked for changed");
    let (_, outside_before) = parse(DOC);
    assert_eq!(
        outside.iter().map(|(_, l)| l).collect::<Vec<_>>(),
        outside_before.iter().map(|(_, l)| l).collect::<Vec<_>>(),
        "text outside the blocks changed"
    );

    // With no names: every block of this adapter's class (a CPU adapter here), the GPU one left.
    let out = record(&doc, &[]);
    assert!(out.status.success(), "record.py failed:\n{}", stderr(&out));
    let (blocks, _) = parse(&std::fs::read_to_string(&doc).unwrap());
    assert_eq!(blocks[1].body[2..], ["| x |", "| --- |", "| 1 |"].map(String::from), "markdown goes in as it is");
    assert_eq!(blocks[2].body[3], "made", "SCRATCH is an empty folder of the block's own");
    assert_eq!(blocks[3].body, ["*Not recorded yet.*"], "a GPU block was run on a CPU adapter");

    // Failures leave the file byte for byte as it was and say why.
    let before = std::fs::read(&doc).unwrap();
    let failing = [
        (
            "<!-- record sum text any: echo \"sum $((1 + 2))\" -->",
            "<!-- record sum text any: echo partial; exit 3 -->",
            "status 3",
        ),
        (
            "<!-- record sum text any: echo \"sum $((1 + 2))\" -->",
            "<!-- record sum text any: false | cat -->",
            "status 1",
        ),
        (
            "<!-- record sum text any: echo \"sum $((1 + 2))\" -->",
            "<!-- record sum text any: true -->",
            "printed nothing",
        ),
    ];
    for (from, to, why) in failing {
        let broken = String::from_utf8(before.clone()).unwrap().replace(from, to);
        std::fs::write(&doc, &broken).unwrap();
        let out = record(&doc, &["table", "sum"]);
        assert!(!out.status.success(), "record.py accepted `{to}`");
        assert!(stderr(&out).contains("block sum") && stderr(&out).contains(why), "{to}: {}", stderr(&out));
        assert_eq!(std::fs::read_to_string(&doc).unwrap(), broken, "{to}: the file changed");
    }
    std::fs::write(&doc, &before).unwrap();
    for (names, why) in [(&["nosuch"][..], "no block named nosuch"), (&["on-gpu"][..], "is measured on a GPU adapter")]
    {
        let out = record(&doc, names);
        assert!(!out.status.success() && stderr(&out).contains(why), "{names:?}: {}", stderr(&out));
        assert_eq!(std::fs::read(&doc).unwrap(), before, "{names:?}: the file changed");
    }
}
