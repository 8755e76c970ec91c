//! The crate's layers, as `src/lib.rs` states them: each module (a command's under `src/commands/`) uses only modules of a
//! lower layer, so there are no import cycles. Read from the source (`crate::name` paths).

use std::collections::BTreeMap;
use std::path::Path;

/// Each module's layer: a module may use only modules of smaller numbers.
const LAYERS: &[(&str, u32)] = &[
    ("gpu", 0),
    ("checkpoint", 0),
    ("plot", 0),
    ("out_folder", 0),
    ("autograd", 1),
    ("ops", 2),
    ("model", 3),
    ("data", 4),
    ("optim", 4),
    ("eval", 5),
    ("train", 5),
    ("probe", 6),
    ("filters", 6),
    ("units", 6),
    ("profile", 6),
    ("selftest", 6),
    ("import_soundnet", 6),
    ("pack", 6),
];

fn rust_files(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

#[test]
fn every_module_uses_only_lower_layers() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let layer: BTreeMap<&str, u32> = LAYERS.iter().copied().collect();
    let mut files = Vec::new();
    rust_files(&src, &mut files);
    let mut problems = Vec::new();
    for file in files {
        let rel = file.strip_prefix(&src).unwrap();
        // A command's module is its folder under commands/, which shows the layering and is no layer.
        let mut parts = rel.components().map(|c| c.as_os_str().to_str().unwrap().trim_end_matches(".rs").to_string());
        let mut top = parts.next().unwrap();
        if top == "commands" {
            top = parts.next().unwrap();
        }
        if top == "main" || top == "lib" || top == "mod" {
            continue;
        }
        let own = *layer.get(top.as_str()).unwrap_or_else(|| panic!("src/{top} has no layer in LAYERS"));
        let text = std::fs::read_to_string(&file).unwrap();
        for used in text.split("crate::").skip(1) {
            let used = used.strip_prefix("commands::").unwrap_or(used);
            let name: String = used.chars().take_while(|c| c.is_alphanumeric() || *c == '_').collect();
            if name == top {
                continue;
            }
            match layer.get(name.as_str()) {
                Some(&l) if l < own => {}
                Some(&l) => problems.push(format!("{} (layer {own}) uses {name} (layer {l})", rel.display())),
                None => problems.push(format!("{} uses crate::{name}, which has no layer", rel.display())),
            }
        }
    }
    assert!(problems.is_empty(), "imports against the layering of src/lib.rs:\n{}", problems.join("\n"));
}
