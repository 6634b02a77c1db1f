//! The maps a new maintainer reads first, held to the code: the README's folder map names every
//! workspace member and every module of `shared/src`, `docs/architecture.md`'s module table names
//! every module of `shared/src`, and neither names a folder or module that no longer exists.

use std::{collections::BTreeSet, fs, path::Path};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap()
}

fn read(rel: &str) -> String {
    fs::read_to_string(root().join(rel)).unwrap_or_else(|e| panic!("{rel}: {e}"))
}

/// The lines of the Markdown section that starts with `heading`, up to the next heading of the
/// same or a higher level.
fn section<'a>(text: &'a str, heading: &str) -> Vec<&'a str> {
    let level = heading.chars().take_while(|c| *c == '#').count();
    let mut lines = text.lines().skip_while(|l| l.trim() != heading);
    assert!(lines.next().is_some(), "no section {heading:?}");
    lines
        .take_while(|l| {
            let hashes = l.chars().take_while(|c| *c == '#').count();
            hashes == 0 || hashes > level
        })
        .collect()
}

/// The table rows of a section: (first cell, the whole row).
fn rows<'a>(lines: &[&'a str]) -> Vec<(&'a str, &'a str)> {
    lines
        .iter()
        .filter(|l| l.starts_with('|') && !l.starts_with("|---") && !l.starts_with("| ---"))
        .skip(1) // the header
        .map(|l| (l.split('|').nth(1).unwrap_or("").trim(), *l))
        .collect()
}

/// Everything written in backticks.
fn code_spans(text: &str) -> Vec<&str> {
    text.split('`').skip(1).step_by(2).collect()
}

/// The workspace members, with `functions/*` expanded the way Cargo does.
fn workspace_members() -> BTreeSet<String> {
    let manifest = read("Cargo.toml");
    let list = manifest
        .split_once("members = [")
        .and_then(|(_, rest)| rest.split_once(']'))
        .expect("Cargo.toml has workspace members")
        .0;
    let mut members = BTreeSet::new();
    for m in list
        .split(',')
        .map(|m| m.trim().trim_matches('"'))
        .filter(|m| !m.is_empty())
    {
        if let Some(dir) = m.strip_suffix("/*") {
            for e in fs::read_dir(root().join(dir)).unwrap() {
                let e = e.unwrap();
                if e.path().join("Cargo.toml").exists() {
                    members.insert(format!("{dir}/{}", e.file_name().to_string_lossy()));
                }
            }
        } else {
            members.insert(m.to_owned());
        }
    }
    members
}

/// The modules of `shared/src` as a reader sees them: `name/` for a folder, `name.rs` for a file.
fn shared_modules() -> BTreeSet<String> {
    fs::read_dir(root().join("shared/src"))
        .unwrap()
        .map(|e| e.unwrap())
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().into_owned();
            if e.path().is_dir() {
                Some(format!("{name}/"))
            } else if name.ends_with(".rs") && name != "lib.rs" {
                Some(name)
            } else {
                None
            }
        })
        .collect()
}

#[test]
fn the_readme_folder_map_names_every_workspace_member_and_nothing_that_is_gone() {
    let readme = read("README.md");
    let map = section(&readme, "## Folder map");
    let rows = rows(&map);
    let named: BTreeSet<&str> = rows.iter().flat_map(|(cell, _)| code_spans(cell)).collect();
    let all_spans: BTreeSet<&str> = rows.iter().flat_map(|(_, row)| code_spans(row)).collect();
    for member in workspace_members() {
        let found = named.contains(member.as_str())
            || named.contains(format!("{member}/").as_str())
            || member.strip_prefix("functions/").is_some_and(|f| {
                // `functions/<callback>` lists the callback functions by name in its row.
                all_spans.contains(f) || named.iter().any(|n| n.contains(f))
            });
        assert!(
            found,
            "README's folder map does not name the workspace member {member}"
        );
    }
    for (cell, _) in &rows {
        let spans = code_spans(cell);
        let siblings_of_functions = spans.first().is_some_and(|s| s.starts_with("functions/"));
        for path in spans {
            let path = path.trim_end_matches('/');
            let exists = if path.contains('<') {
                continue;
            } else if path.contains('/') || path.contains('.') {
                root().join(path).exists()
            } else if siblings_of_functions {
                // `functions/usage-ingest`, `usage-queue`: siblings named without their folder.
                root().join("functions").join(path).exists()
            } else {
                continue; // a crate's name, as in "`shared/` (crate `koogallery`)"
            };
            assert!(
                exists,
                "README's folder map names {path}, which does not exist"
            );
        }
    }
}

#[test]
fn the_readme_and_the_architecture_name_every_module_of_shared_and_nothing_that_is_gone() {
    let readme = read("README.md");
    let map = section(&readme, "## Folder map");
    let shared_row = rows(&map)
        .into_iter()
        .find(|(cell, _)| cell.contains("`shared/`"))
        .expect("a folder map row for shared/")
        .1;
    let architecture = read("docs/architecture.md");
    let modules = section(
        &architecture,
        "## The modules of `shared/` (crate `koogallery`)",
    );
    let module_cells: BTreeSet<&str> = rows(&modules)
        .into_iter()
        .flat_map(|(cell, _)| code_spans(cell))
        .collect();
    // The small shared vocabulary is named in one sentence under the table.
    let prose: BTreeSet<&str> = modules
        .iter()
        .filter(|l| !l.starts_with('|'))
        .flat_map(|l| code_spans(l))
        .collect();
    let actual = shared_modules();
    for module in &actual {
        assert!(
            code_spans(shared_row).contains(&module.as_str()),
            "README's folder map row for shared/ does not name {module}"
        );
        assert!(
            module_cells.contains(module.as_str()) || prose.contains(module.as_str()),
            "docs/architecture.md's module table does not name {module}"
        );
    }
    for named in module_cells {
        assert!(
            actual.contains(named),
            "docs/architecture.md's module table names {named}, which shared/src does not have"
        );
    }
}
