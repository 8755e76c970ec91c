//! Every repository path that README.md and docs/*.md name exists: the words in code (inline and
//! fenced) that start like a path of this repository (`src/`, `shaders/`, `tools/`, ...), and the
//! targets of markdown links and images. A missing one is reported with its file and line.
//!
//! A word is read as a path from one of the prefixes below to the first character a path here does
//! not hold; a trailing `:123` (a line) or `#anchor` is dropped; a glob (`tools/fixtures/*.py`)
//! checks the folder it lists; a placeholder (`shaders/<op>.wgsl`) is skipped. Link targets are
//! relative to the file that holds them; web addresses and in-page anchors are not checked. Paths
//! under `shared/` (the data beside the repository) are not part of it and are not checked.

use std::path::{Path, PathBuf};

/// How a path of this repository begins.
const PREFIXES: &[&str] =
    &["src/", "shaders/", "tests/", "benches/", "tools/", "docs/", "assets/", ".ci/", "Cargo.toml"];

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// README.md and every docs/*.md, as paths relative to the repository root.
fn documents() -> Vec<PathBuf> {
    let mut files = vec![PathBuf::from("README.md")];
    if let Ok(entries) = std::fs::read_dir(root().join("docs")) {
        let mut docs: Vec<PathBuf> = entries
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "md"))
            .map(|p| p.strip_prefix(root()).unwrap().to_path_buf())
            .collect();
        docs.sort();
        files.extend(docs);
    }
    files
}

/// The stretches of a line that are code: inside a fenced block the whole line, else each
/// backticked span.
fn code_spans(line: &str, in_fence: bool) -> Vec<&str> {
    if in_fence {
        return vec![line];
    }
    line.split('`').skip(1).step_by(2).collect()
}

/// The words of a code span that name repository paths, cleaned of line numbers and anchors.
fn paths_in_code(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    for word in code.split(|c: char| c.is_whitespace() || matches!(c, '"' | '\'' | '(' | ')' | '=' | ',' | ';' | '|')) {
        if !PREFIXES.iter().any(|p| word.starts_with(p)) {
            continue;
        }
        let mut path = word;
        if let Some(i) = path.find('#') {
            path = &path[..i];
        }
        if let Some(i) = path.find(':') {
            path = &path[..i];
        }
        let path = path.trim_end_matches(['.', ',', ';', ':']);
        if !path.is_empty() {
            found.push(path.to_string());
        }
    }
    found
}

/// The targets of markdown links and images on a line: `[text](target)`, `![alt](target)`.
fn link_targets(line: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = line;
    while let Some(i) = rest.find("](") {
        rest = &rest[i + 2..];
        let Some(end) = rest.find(')') else { break };
        let target = rest[..end].split_whitespace().next().unwrap_or("");
        rest = &rest[end..];
        if target.is_empty() || target.starts_with('#') || target.contains("://") || target.starts_with("mailto:") {
            continue;
        }
        let target = target.split('#').next().unwrap();
        found.push(target.to_string());
    }
    found
}

/// Whether a path relative to `base` exists, a glob meaning the folder that holds it.
fn exists(base: &Path, path: &str) -> bool {
    let clean = path.strip_prefix("./").unwrap_or(path);
    match clean.find(['*', '?', '[']) {
        Some(i) => {
            let folder = clean[..i].rfind('/').map_or("", |j| &clean[..j]);
            base.join(folder).is_dir()
        }
        None => base.join(clean).exists(),
    }
}

/// Outside the repository (the shared data) or a placeholder: not checked.
fn skipped(path: &str) -> bool {
    let parts: Vec<&str> = path.split('/').filter(|p| *p != "." && *p != "..").collect();
    parts.first() == Some(&"shared") || path.contains(['<', '>', '{', '}', '$'])
}

/// Every missing path, as `file:line: path`.
fn missing_paths() -> Vec<String> {
    let root = root();
    let mut missing = Vec::new();
    for doc in documents() {
        let text = std::fs::read_to_string(root.join(&doc)).unwrap_or_else(|e| panic!("{}: {e}", doc.display()));
        let dir = root.join(doc.parent().unwrap());
        let mut in_fence = false;
        for (n, line) in text.lines().enumerate() {
            if line.trim_start().starts_with("```") {
                in_fence = !in_fence;
                continue;
            }
            let mut checks: Vec<(PathBuf, String)> = Vec::new();
            for code in code_spans(line, in_fence) {
                checks.extend(paths_in_code(code).into_iter().map(|p| (root.clone(), p)));
            }
            if !in_fence {
                checks.extend(link_targets(line).into_iter().map(|p| (dir.clone(), p)));
            }
            for (base, path) in checks {
                if !skipped(&path) && !exists(&base, &path) {
                    missing.push(format!("{}:{}: {path}", doc.display(), n + 1));
                }
            }
        }
    }
    missing
}

#[test]
fn every_path_the_docs_name_exists() {
    let missing = missing_paths();
    assert!(missing.is_empty(), "paths named in the documentation that do not exist:\n{}", missing.join("\n"));
}

#[test]
fn the_docs_are_read() {
    // The check above must see the README's own references, or it would pass on nothing.
    let docs = documents();
    assert!(docs.len() > 1, "docs/*.md not found: {docs:?}");
    let readme = std::fs::read_to_string(root().join("README.md")).unwrap();
    let mut in_fence = false;
    let mut named = 0;
    for line in readme.lines() {
        if line.trim_start().starts_with("```") {
            in_fence = !in_fence;
            continue;
        }
        named += code_spans(line, in_fence).iter().map(|c| paths_in_code(c).len()).sum::<usize>();
    }
    assert!(named >= 10, "README.md names only {named} repository paths in code");
    assert_eq!(paths_in_code("see tools/test.sh:12"), ["tools/test.sh"]);
    assert_eq!(paths_in_code("src/lib.rs#layers"), ["src/lib.rs"]);
    assert_eq!(
        link_targets("[a](docs/kernels.md#tiles) and ![b](../assets/x.png) [c](https://x.y/z)"),
        ["docs/kernels.md", "../assets/x.png"]
    );
    assert!(exists(&root(), "tools/fixtures/*.py"));
    assert!(!exists(&root(), "tools/no-such-folder/*.py"));
    assert!(skipped("../shared/data/esc10") && skipped("shared/data") && skipped("shaders/<op>.wgsl"));
}
