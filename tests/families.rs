//! Every op of `sn_wgpu::ops::FAMILIES`, the one list of ops, has its test file and its PyTorch
//! fixtures with the script that makes them; the self-test, the binding check and the kernel
//! benchmarks go through the same list (and stop on a family they have nothing for).

use std::path::Path;

use sn_wgpu::ops::FAMILIES;

#[test]
fn every_family_has_its_tests_and_its_fixtures_with_their_maker() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let driver = std::fs::read_to_string(root.join("tools/make_fixtures.py")).unwrap();
    let mut missing = Vec::new();
    for family in FAMILIES {
        let tests = root.join(format!("tests/{}.rs", family.name));
        if !tests.is_file() {
            missing.push(format!("{}: no {}", family.name, tests.display()));
        }
        for fixture in family.fixtures {
            let file = root.join(format!("tests/fixtures/{fixture}.safetensors"));
            if !file.is_file() {
                missing.push(format!(
                    "{}: no {} (python3 tools/make_fixtures.py {fixture})",
                    family.name,
                    file.display()
                ));
            }
            let own_maker = root.join(format!("tools/fixtures/{fixture}.py")).is_file();
            let shared_maker = driver.contains(&format!("\"{fixture}\": \""));
            if !own_maker && !shared_maker {
                missing.push(format!(
                    "{}: no tools/fixtures/{fixture}.py, and SHARED in make_fixtures.py names none",
                    family.name
                ));
            }
        }
    }
    assert!(missing.is_empty(), "op families without what they need:\n{}", missing.join("\n"));
}

#[test]
fn the_list_holds_every_shader_once() {
    let names: Vec<&str> = sn_wgpu::ops::shaders().map(|s| s.name).collect();
    let mut unique = names.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), names.len(), "a shader in two families: {names:?}");
}
