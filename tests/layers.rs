//! The layering of `src/`: every module imports only from lower files of
//! its own folder and from lower layers, so that no module cycle can form.
//!
//! The order is the one the source states: the `//!` block of `lib.rs`
//! lists the layers after "Layers, bottom up:", and the `//!` block of
//! each folder's `mod.rs` lists its files after "Files, bottom up:"; each
//! list must name exactly the modules the file declares. A `crate::` path in a file (outside
//! its `#[cfg(test)]` part and its comments) is an edge from that file to
//! the module the path names; the edge is allowed when the two meet in a
//! folder where the target's entry comes before the source's, or when the
//! source is the target's folder (`mod.rs`, `lib.rs`: a layer's door).
//! Anything else fails the test with the offending file, line and path;
//! `cargo test --test layers -- --nocapture` prints the edges between
//! layers.

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::Path;

/// A module path below the crate root, e.g. `["heap", "large", "blocks"]`.
type Module = Vec<String>;

/// The modules of `src/`, each with its source and, for folders, the order
/// of its `mod` declarations.
struct Tree {
    sources: BTreeMap<Module, String>,
    order: BTreeMap<Module, Vec<String>>,
}

fn declared_modules(source: &str) -> Vec<String> {
    source
        .lines()
        .filter_map(|line| {
            let line = line.trim();
            let rest = line
                .strip_prefix("pub(crate) mod ")
                .or_else(|| line.strip_prefix("pub mod "))
                .or_else(|| line.strip_prefix("mod "))?;
            rest.strip_suffix(';').map(str::to_owned)
        })
        .collect()
}

/// The modules listed after "bottom up:" in the `//!` block of `source`.
fn stated_order(source: &str, door: &Path) -> Vec<String> {
    let doc: String = source
        .lines()
        .filter_map(|line| line.strip_prefix("//!"))
        .flat_map(str::split_whitespace)
        .collect::<Vec<_>>()
        .join(" ");
    let start = doc
        .find("bottom up:")
        .unwrap_or_else(|| panic!("{} states no order (\"bottom up:\")", door.display()))
        + "bottom up:".len();
    let list = &doc[start..];
    let list = &list[..list.find('.').unwrap_or(list.len())];
    list.split(',')
        .map(|name| name.trim().trim_matches('`').to_owned())
        .collect()
}

fn read_tree(dir: &Path, module: Module, tree: &mut Tree) {
    let door = if module.is_empty() {
        dir.join("lib.rs")
    } else {
        dir.join("mod.rs")
    };
    let source = fs::read_to_string(&door).unwrap();
    let children = stated_order(&source, &door);
    let mut declared = declared_modules(&source);
    let mut stated = children.clone();
    declared.sort();
    stated.sort();
    assert_eq!(
        declared,
        stated,
        "{}: the order stated in its //! block must name exactly its modules",
        door.display()
    );
    tree.sources.insert(module.clone(), source);
    for child in &children {
        let mut path = module.clone();
        path.push(child.clone());
        let folder = dir.join(child);
        if folder.join("mod.rs").exists() {
            read_tree(&folder, path, tree);
        } else {
            let file = dir.join(format!("{child}.rs"));
            let source = fs::read_to_string(&file)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", file.display()));
            tree.sources.insert(path, source);
        }
    }
    tree.order.insert(module, children);
}

/// The part of a file that the crate itself compiles: up to its test
/// module, without comments.
fn code_lines(source: &str) -> impl Iterator<Item = (usize, &str)> {
    source
        .lines()
        .enumerate()
        .take_while(|(_, line)| line.trim() != "#[cfg(test)]")
        .map(|(n, line)| (n + 1, line.split("//").next().unwrap_or("")))
}

/// The `crate::` paths of a line, braces of a `use` expanded one level.
fn crate_paths(line: &str) -> Vec<Vec<String>> {
    let mut paths = Vec::new();
    let mut rest = line;
    while let Some(start) = rest.find("crate::") {
        rest = &rest[start + "crate::".len()..];
        let end = rest
            .find(|c: char| !(c.is_alphanumeric() || c == '_' || c == ':'))
            .unwrap_or(rest.len());
        let prefix: Vec<String> = rest[..end]
            .split("::")
            .filter(|s| !s.is_empty())
            .map(str::to_owned)
            .collect();
        if rest[end..].starts_with('{') {
            let close = rest[end..].find('}').map_or(rest.len(), |i| end + i);
            for item in rest[end + 1..close].split(',') {
                let mut path = prefix.clone();
                path.extend(
                    item.trim()
                        .split(' ')
                        .next()
                        .unwrap_or("")
                        .split("::")
                        .filter(|s| !s.is_empty() && *s != "self")
                        .map(str::to_owned),
                );
                paths.push(path);
            }
        } else {
            paths.push(prefix);
        }
    }
    paths
}

/// The longest prefix of `path` that is a module.
fn module_of(tree: &Tree, path: &[String]) -> Module {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|m| tree.sources.contains_key(m))
        .unwrap_or_default()
}

/// Why the edge `from -> to` breaks the layering, if it does.
fn violation(tree: &Tree, from: &Module, to: &Module) -> Option<String> {
    if from == to || to.starts_with(from) {
        return None;
    }
    let common = from.iter().zip(to).take_while(|(a, b)| a == b).count();
    let folder = from[..common].to_vec();
    if common == to.len() {
        return Some(format!(
            "{} reaches up into its own folder's door `{}`",
            from.join("::"),
            to.join("::")
        ));
    }
    let order = &tree.order[&folder];
    let position = |name: &String| order.iter().position(|m| m == name).unwrap();
    let (source, target) = (&from[common], &to[common]);
    (position(target) >= position(source)).then(|| {
        format!(
            "{} calls {}, but `{target}` is not below `{source}` in the order of {}",
            from.join("::"),
            to.join("::"),
            if folder.is_empty() {
                "lib.rs".to_owned()
            } else {
                format!("{}/mod.rs", folder.join("/"))
            }
        )
    })
}

#[test]
fn every_module_calls_only_lower_modules() {
    let mut tree = Tree {
        sources: BTreeMap::new(),
        order: BTreeMap::new(),
    };
    read_tree(
        &Path::new(env!("CARGO_MANIFEST_DIR")).join("src"),
        Vec::new(),
        &mut tree,
    );
    let layers = tree.order[&Vec::new()].clone();
    assert!(layers.len() >= 5, "lib.rs declares the layers: {layers:?}");

    let mut errors = Vec::new();
    let mut layer_edges: BTreeSet<(String, String)> = BTreeSet::new();
    let mut edges = 0;
    for (module, source) in &tree.sources {
        for (line, code) in code_lines(source) {
            for path in crate_paths(code) {
                let target = module_of(&tree, &path);
                if target.is_empty() || &target == module {
                    continue;
                }
                edges += 1;
                if let Some(why) = violation(&tree, module, &target) {
                    errors.push(format!("{}: line {line}: {why}", module.join("::")));
                }
                if let (Some(a), Some(b)) = (module.first(), target.first()) {
                    if a != b {
                        layer_edges.insert((a.clone(), b.clone()));
                    }
                }
            }
        }
    }
    println!("layers, bottom up: {}", layers.join(" < "));
    for layer in &layers {
        let below: Vec<&str> = layer_edges
            .iter()
            .filter(|(a, _)| a == layer)
            .map(|(_, b)| b.as_str())
            .collect();
        println!("{layer} calls: {}", below.join(", "));
    }
    println!(
        "{} modules, {edges} crate:: paths checked, {} out of order",
        tree.sources.len(),
        errors.len()
    );
    assert!(errors.is_empty(), "layering broken:\n{}", errors.join("\n"));
}

#[test]
fn the_check_sees_a_path_that_goes_up() {
    let mut tree = Tree {
        sources: BTreeMap::new(),
        order: BTreeMap::new(),
    };
    let module = |s: &str| -> Module { s.split("::").map(str::to_owned).collect() };
    for m in ["low", "low::a", "low::b", "high", "high::c"] {
        tree.sources.insert(module(m), String::new());
    }
    tree.order
        .insert(Vec::new(), vec!["low".into(), "high".into()]);
    tree.order
        .insert(module("low"), vec!["a".into(), "b".into()]);
    tree.order.insert(module("high"), vec!["c".into()]);
    assert!(violation(&tree, &module("high::c"), &module("low::b")).is_none());
    assert!(violation(&tree, &module("low::b"), &module("low::a")).is_none());
    assert!(violation(&tree, &module("low::a"), &module("low::b")).is_some());
    assert!(violation(&tree, &module("low::a"), &module("high::c")).is_some());
    assert!(violation(&tree, &module("low::a"), &module("low")).is_some());
    assert_eq!(
        crate_paths("use crate::low::{a, b::X};"),
        [module("low::a"), module("low::b::X")]
    );
    assert_eq!(module_of(&tree, &module("low::a::Item")), module("low::a"));
}
