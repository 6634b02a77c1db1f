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

/// The README's settings table is the catalog: every setting an operator sets (or a secret set
/// locally) has its row, with its default as the catalog writes it, and no row names a variable
/// the code does not read. A retired setting is named where the README says what replaced it;
/// the template's own variables are in docs/deploy.md or the README.
#[test]
fn the_readme_settings_table_is_the_settings_catalog() {
    use koogallery::config::catalog::{ALL, Origin};
    let readme = read("README.md");
    let deploy = read("docs/deploy.md");
    let table = section(&readme, "## Configuration");
    let rows = rows(&table);
    let row_of = |name: &str| {
        rows.iter()
            .find(|(cell, _)| code_spans(cell).contains(&name))
            .map(|(_, row)| *row)
    };
    for setting in ALL {
        match setting.origin {
            Origin::Operator | Origin::Secret => {
                let row = row_of(setting.name).unwrap_or_else(|| {
                    panic!("README's settings table has no row for {}", setting.name)
                });
                let default_cell = row.split('|').nth(2).unwrap_or("");
                // Long defaults (a sentence) are described, not quoted.
                if let Some(default) = setting.default.filter(|d| d.len() <= 40) {
                    let shown = code_spans(default_cell);
                    assert!(
                        shown
                            .iter()
                            .any(|s| s.trim_end_matches('/') == default.trim_end_matches('/')),
                        "README shows {}'s default as {default_cell:?}, the code's is {default:?}",
                        setting.name
                    );
                }
            }
            Origin::Retired => assert!(
                readme.contains(setting.name),
                "README does not say that {} is no longer read",
                setting.name
            ),
            Origin::Template => assert!(
                deploy.contains(setting.name) || readme.contains(setting.name),
                "neither docs/deploy.md nor README names {}, which the template sets",
                setting.name
            ),
        }
    }
    let known: BTreeSet<&str> = ALL.iter().map(|s| s.name).collect();
    for (cell, _) in &rows {
        for name in code_spans(cell) {
            if name.starts_with("KOOGALLERY_") || name == "PORT" || name == "RUST_LOG" {
                assert!(
                    known.contains(name),
                    "README's settings table names {name}, which no code reads (not in config::catalog)"
                );
            }
        }
    }
}

/// Settings are read through `config::Env` with their catalog entry, never straight from the
/// process environment: one definition, one reader.
#[test]
fn no_production_code_reads_the_environment_around_the_catalog() {
    fn walk(dir: &Path, out: &mut Vec<std::path::PathBuf>) {
        for e in fs::read_dir(dir).into_iter().flatten().flatten() {
            let p = e.path();
            let name = e.file_name().to_string_lossy().into_owned();
            if p.is_dir() && name != "tests" && name != "benches" && name != "target" {
                walk(&p, out);
            } else if name.ends_with(".rs") && name != "tests.rs" {
                out.push(p);
            }
        }
    }
    let mut files = Vec::new();
    for dir in ["shared/src", "functions", "adapters", "local/src"] {
        walk(&root().join(dir), &mut files);
    }
    let the_reader = root().join("shared/src/config/mod.rs");
    let mut offenders = Vec::new();
    for f in files {
        let text = fs::read_to_string(&f).unwrap();
        let code = text.split("#[cfg(test)]").next().unwrap_or("");
        if f != the_reader && (code.contains("std::env::var(") || code.contains("env::var_os(")) {
            offenders.push(f.strip_prefix(root()).unwrap().display().to_string());
        }
    }
    assert!(
        offenders.is_empty(),
        "read settings through koogallery::config::Env and config::catalog: {offenders:?}"
    );
}
