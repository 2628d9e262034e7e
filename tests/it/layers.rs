//! The crate's top-level modules form layers without cycles (README, "Repository layout"),
//! each using only those below it:
//!
//! 1. config, format, generation, content_type, aws, backoff, pacing, throttle, listener, …
//! 2. site, sync, tls → live, clock, budget
//! 3. update → status, settings
//! 4. history, indicators → notify
//! 5. server → status_page
//! 6. appliance → demo
//!
//! A module may use any module below it; when two modules use each other, neither can be
//! read, tested or replaced alone. This reads every `crate::name` path in `src/` (outside
//! comments and `#[cfg(test)]` modules, which may reach anywhere) and fails on a cycle
//! between top-level modules, naming the files that close it.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt::Write;
use std::path::{Path, PathBuf};

/// `module -> (module it uses -> files that use it)`.
type Graph = BTreeMap<String, BTreeMap<String, BTreeSet<String>>>;

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    let entries = std::fs::read_dir(dir).unwrap_or_else(|e| panic!("{}: {e}", dir.display()));
    for entry in entries.flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// The code of a file without comments and without its test module.
fn code_of(text: &str) -> String {
    let text = match text.find("#[cfg(test)]\nmod tests") {
        Some(i) => &text[..i],
        None => text,
    };
    text.lines()
        .map(|line| match line.find("//") {
            Some(i) => &line[..i],
            None => line,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The top-level modules a piece of code names: `crate::name` and `use crate::{a, b::c}`.
fn used_modules(code: &str) -> BTreeSet<String> {
    let mut used = BTreeSet::new();
    let ident = |s: &str| -> String {
        s.chars()
            .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
            .collect()
    };
    for (i, _) in code.match_indices("crate::") {
        let rest = &code[i + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            // Only the first segment of each item: `{a, b::{c, d}}` names a and b.
            let mut depth = 0;
            let mut start = true;
            for (j, c) in group.char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    ',' if depth == 0 => start = true,
                    c if start && (c.is_ascii_alphanumeric() || c == '_') => {
                        used.insert(ident(&group[j..]));
                        start = false;
                    }
                    _ => {}
                }
            }
        } else {
            let name = ident(rest);
            if !name.is_empty() {
                used.insert(name);
            }
        }
    }
    used
}

fn graph(src: &Path) -> Graph {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut graph = Graph::new();
    for file in files {
        let rel = file.strip_prefix(src).expect("under src").to_owned();
        let top = rel
            .components()
            .next()
            .and_then(|c| c.as_os_str().to_str())
            .map(|s| s.trim_end_matches(".rs").to_owned())
            .unwrap_or_default();
        if top == "main" || top == "lib" {
            continue;
        }
        let text = std::fs::read_to_string(&file).expect("read source");
        let node = graph.entry(top.clone()).or_default();
        for used in used_modules(&code_of(&text)) {
            if used != top {
                node.entry(used)
                    .or_default()
                    .insert(rel.display().to_string());
            }
        }
    }
    graph
}

/// The strongly connected components with more than one module (Tarjan).
fn cycles(graph: &Graph) -> Vec<Vec<String>> {
    struct Walk<'a> {
        graph: &'a Graph,
        index: BTreeMap<&'a str, usize>,
        low: BTreeMap<&'a str, usize>,
        stack: Vec<&'a str>,
        found: Vec<Vec<String>>,
    }
    fn visit<'a>(w: &mut Walk<'a>, v: &'a str) {
        let n = w.index.len();
        w.index.insert(v, n);
        w.low.insert(v, n);
        w.stack.push(v);
        let graph = w.graph;
        for next in graph.get(v).into_iter().flat_map(|e| e.keys()) {
            let next = next.as_str();
            if !w.index.contains_key(next) {
                visit(w, next);
                let low = w.low[v].min(w.low[next]);
                w.low.insert(v, low);
            } else if w.stack.contains(&next) {
                let low = w.low[v].min(w.index[next]);
                w.low.insert(v, low);
            }
        }
        if w.low[v] == w.index[v] {
            let mut component = Vec::new();
            while let Some(top) = w.stack.pop() {
                component.push(top.to_owned());
                if top == v {
                    break;
                }
            }
            if component.len() > 1 {
                component.sort();
                w.found.push(component);
            }
        }
    }
    let mut walk = Walk {
        graph,
        index: BTreeMap::new(),
        low: BTreeMap::new(),
        stack: Vec::new(),
        found: Vec::new(),
    };
    for v in graph.keys() {
        if !walk.index.contains_key(v.as_str()) {
            visit(&mut walk, v);
        }
    }
    walk.found
}

#[test]
fn the_top_level_modules_use_each_other_without_a_cycle() {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("src");
    let graph = graph(&src);
    assert!(graph.len() > 20, "read too few modules: {:?}", graph.keys());
    let mut report = String::new();
    for cycle in cycles(&graph) {
        let _ = writeln!(report, "a cycle: {}", cycle.join(", "));
        for from in &cycle {
            for (to, files) in &graph[from] {
                if cycle.contains(to) {
                    let _ = writeln!(report, "  {from} -> {to}: {files:?}");
                }
            }
        }
    }
    assert!(
        report.is_empty(),
        "{report}move what both sides need into a module below them (README, \"Repository layout\")"
    );
    // `config` is a leaf: the schema, its defaults and checks, nothing of the subsystems.
    assert_eq!(
        graph
            .get("config")
            .map(|used| used.keys().collect::<Vec<_>>()),
        Some(vec![]),
        "config must not use the rest of the crate ({:?})",
        graph.get("config")
    );
}

/// The check itself: a cycle written into a copy of the tree is found, with its files.
#[test]
fn a_cycle_between_two_modules_is_found() {
    let dir = tempfile::tempdir().expect("tempdir");
    let src = dir.path();
    std::fs::create_dir(src.join("a")).expect("mkdir");
    std::fs::write(src.join("a/mod.rs"), "use crate::{b::Thing, c};\n").expect("write");
    std::fs::write(
        src.join("b.rs"),
        "// crate::c in a comment is no use\nfn f() { crate::a::g() }\n",
    )
    .expect("write");
    std::fs::write(
        src.join("c.rs"),
        "pub fn h() {}\n#[cfg(test)]\nmod tests { use crate::a; }\n",
    )
    .expect("write");
    let graph = graph(src);
    assert_eq!(cycles(&graph), vec![vec!["a".to_owned(), "b".to_owned()]]);
    assert!(!graph["b"].contains_key("c") && !graph["c"].contains_key("a"));
}
