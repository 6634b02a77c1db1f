//! The layout is the architecture: wire DTOs (`protocol`) and the domain (`instance`, `order`,
//! `provisioning`) never import each other (the callbacks translate), and every module says in its
//! first line which KooGallery concept it holds.

use std::path::{Path, PathBuf};

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

fn src() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// The production code of a file: everything before its test module, comments left out.
fn production_code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    let code = match text.find("#[cfg(test)]") {
        Some(i) => &text[..i],
        None => &text,
    };
    code.lines()
        .filter(|l| !l.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn violations(module: &str, forbidden: &[&str]) -> Vec<String> {
    let mut files = Vec::new();
    sources(&src().join(module), &mut files);
    assert!(!files.is_empty(), "no sources under {module}");
    let mut found = Vec::new();
    for f in files {
        if f.file_name().is_some_and(|n| n == "tests.rs") {
            continue;
        }
        let code = production_code(&f);
        for bad in forbidden {
            if code.contains(&format!("crate::{bad}")) || code.contains(&format!("crate::{{{bad}"))
            {
                found.push(format!("{} uses crate::{bad}", f.display()));
            }
        }
    }
    found
}

#[test]
fn the_domain_never_imports_the_wire_or_the_callbacks() {
    let forbidden = ["protocol", "callbacks", "config", "testing"];
    let mut found = Vec::new();
    for module in ["instance", "order", "provisioning"] {
        found.extend(violations(module, &forbidden));
    }
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn the_wire_never_imports_the_domain() {
    let found = violations(
        "protocol",
        &[
            "instance",
            "order",
            "provisioning",
            "callbacks",
            "jobs",
            "config",
        ],
    );
    assert!(found.is_empty(), "{found:#?}");
}

#[test]
fn every_module_opens_with_a_line_naming_its_concept() {
    let mut files = Vec::new();
    sources(&src(), &mut files);
    let missing: Vec<String> = files
        .iter()
        .filter(|f| !std::fs::read_to_string(f).unwrap().starts_with("//! "))
        .map(|f| f.display().to_string())
        .collect();
    assert!(
        missing.is_empty(),
        "modules without a //! line: {missing:#?}"
    );
}
