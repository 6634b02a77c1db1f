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

/// The top-level modules a piece of code names through `crate::`: in paths (`crate::a::b`) and in
/// `use` groups, however rustfmt wraps them (`use crate::{\n    a::b,\n    c,\n};`).
fn crate_modules(code: &str) -> Vec<String> {
    let mut found = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find("crate::") {
        rest = &rest[i + "crate::".len()..];
        let text = rest.trim_start();
        if let Some(group) = text.strip_prefix('{') {
            // The braced group up to its matching brace; its top-level items' first segments.
            let (mut depth, mut item, mut end) = (1usize, String::new(), group.len());
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => {
                        depth -= 1;
                        if depth == 0 {
                            end = j;
                            break;
                        }
                    }
                    _ => {}
                }
                if depth == 1 && c == ',' {
                    found.push(first_segment(&item));
                    item.clear();
                } else {
                    item.push(c);
                }
            }
            found.push(first_segment(&item));
            rest = &group[end..];
        } else {
            found.push(first_segment(text));
        }
    }
    found.retain(|m| !m.is_empty());
    found
}

fn first_segment(path: &str) -> String {
    path.trim()
        .chars()
        .take_while(|c| c.is_alphanumeric() || *c == '_')
        .collect()
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
        for used in crate_modules(&production_code(&f)) {
            if forbidden.contains(&used.as_str()) {
                found.push(format!("{} uses crate::{used}", f.display()));
            }
        }
    }
    found
}

#[test]
fn imports_are_found_however_they_are_written() {
    let code = "use crate::{\n    ResultCode,\n    protocol::{Reply, v2_basic::X},\n    instance::Instance,\n};\nlet x = crate::order::offline::Y;\nuse crate::clock::Clock;";
    assert_eq!(
        crate_modules(code),
        ["ResultCode", "protocol", "instance", "order", "clock"]
    );
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
