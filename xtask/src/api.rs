//! `cargo xtask api [--bless]`: a snapshot of every library crate's public surface.
//!
//! `cargo semver-checks` needs a published baseline and `cargo public-api` needs nightly
//! rustdoc JSON; this works on stable. Each `src/**.rs` file of a library crate is parsed with
//! `syn`, and every `pub` item (not `pub(crate)`, not under `#[cfg(test)]`) is written as one
//! line, with its module path and signature (bodies left out): functions, structs with their
//! `pub` fields, enums with their variants, traits with their items, `pub` methods and trait
//! impls, consts, statics, type aliases, re-exports, exported macros. The lines, sorted, go
//! to `api/<crate>.txt`. `cargo xtask api` fails when the code's surface differs from the
//! committed snapshot, and prints the difference; `--bless` rewrites the snapshots, so an API
//! change shows up in review as a diff of `api/`.
//!
//! It is the surface *as written*, not as reachable: a `pub` item in a private module is
//! listed even when nothing re-exports it. That errs on the side of flagging a change.

use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::fs;
use std::path::{Path, PathBuf};

use quote::ToTokens;
use syn::{Attribute, ImplItem, Item, TraitItem, Visibility};

/// The crates whose API is snapshotted: every published library crate.
const CRATES: [&str; 8] = [
    "flexiai-events",
    "flexiai-serde",
    "flexiai-backend",
    "flexiai-backend-redis",
    "flexiai-breaker",
    "flexiai-sync",
    "flexiai-client",
    "flexiai-tower",
];

/// Checks (or with `bless`, rewrites) every snapshot.
pub(crate) fn run(root: &Path, bless: bool) -> crate::Result<()> {
    let mut stale = Vec::new();
    for krate in CRATES {
        let surface = surface(&root.join(krate).join("src"))?;
        let path = root.join("api").join(format!("{krate}.txt"));
        let current = fs::read_to_string(&path).unwrap_or_default();
        if current == surface {
            continue;
        }
        if bless {
            fs::create_dir_all(root.join("api"))?;
            fs::write(&path, &surface)?;
            println!("api: wrote {}", path.display());
        } else {
            print_diff(krate, &current, &surface);
            stale.push(krate);
        }
    }
    if stale.is_empty() {
        if !bless {
            println!("api: every snapshot matches");
        }
        Ok(())
    } else {
        Err(format!(
            "the public API of {} changed; review the lines above and run `cargo xtask api --bless`",
            stale.join(", ")
        )
        .into())
    }
}

fn print_diff(krate: &str, old: &str, new: &str) {
    let old: BTreeSet<&str> = old.lines().collect();
    let new: BTreeSet<&str> = new.lines().collect();
    println!("api/{krate}.txt:");
    for gone in old.difference(&new) {
        println!("  - {gone}");
    }
    for added in new.difference(&old) {
        println!("  + {added}");
    }
}

/// The sorted surface of the crate whose sources are under `src`.
fn surface(src: &Path) -> crate::Result<String> {
    let mut files = Vec::new();
    collect(src, &mut files)?;
    let mut lines = BTreeSet::new();
    for file in files {
        let text = fs::read_to_string(&file)?;
        let parsed = syn::parse_file(&text).map_err(|e| format!("{}: {e}", file.display()))?;
        let module = module_path(src, &file);
        items(&module, &parsed.items, &mut lines);
    }
    let mut out = String::new();
    for line in lines {
        let _ = writeln!(out, "{line}");
    }
    Ok(out)
}

fn collect(dir: &Path, files: &mut Vec<PathBuf>) -> crate::Result<()> {
    let mut entries: Vec<_> = fs::read_dir(dir)?.collect::<Result<_, _>>()?;
    entries.sort_by_key(|e| e.path());
    for entry in entries {
        let path = entry.path();
        if path.is_dir() {
            collect(&path, files)?;
        } else if path.extension().is_some_and(|e| e == "rs") {
            files.push(path);
        }
    }
    Ok(())
}

/// `src/lib.rs` is the crate root, `src/a/b.rs` and `src/a/b/mod.rs` are `a::b`.
fn module_path(src: &Path, file: &Path) -> String {
    let rel = file.strip_prefix(src).unwrap_or(file).with_extension("");
    let mut parts: Vec<String> = rel
        .components()
        .map(|c| c.as_os_str().to_string_lossy().into_owned())
        .collect();
    if parts.last().is_some_and(|p| p == "lib" || p == "mod") {
        parts.pop();
    }
    if parts.is_empty() {
        "crate".into()
    } else {
        format!("crate::{}", parts.join("::"))
    }
}

fn is_pub(vis: &Visibility) -> bool {
    matches!(vis, Visibility::Public(_))
}

/// `#[cfg(...)]` attributes, kept because they decide when an item exists.
fn cfgs(attrs: &[Attribute]) -> String {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("cfg"))
        .map(|a| format!("{} ", tokens(a)))
        .collect()
}

fn is_test_only(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|a| {
        a.path().is_ident("cfg") && {
            let t = tokens(a);
            t.contains("test") && !t.contains("not (test")
        }
    })
}

fn tokens(t: &impl ToTokens) -> String {
    t.to_token_stream().to_string()
}

fn items(module: &str, items: &[Item], out: &mut BTreeSet<String>) {
    for item in items {
        item_lines(module, item, out);
    }
}

fn item_lines(module: &str, item: &Item, out: &mut BTreeSet<String>) {
    let mut push = |attrs: &[Attribute], text: String| {
        if !is_test_only(attrs) {
            out.insert(format!("{module}: {}{text}", cfgs(attrs)));
        }
    };
    match item {
        Item::Fn(f) if is_pub(&f.vis) => push(&f.attrs, tokens(&f.sig)),
        Item::Struct(s) if is_pub(&s.vis) => {
            let mut s = s.clone();
            s.attrs.retain(kept);
            // Private fields are not API; whether any exist is (struct literals).
            let mut hidden = false;
            for field in s.fields.iter_mut() {
                if is_pub(&field.vis) {
                    field.attrs.clear();
                } else {
                    hidden = true;
                }
            }
            let mut shown: Vec<String> = s
                .fields
                .iter()
                .filter(|f| is_pub(&f.vis))
                .map(tokens)
                .collect();
            let mut text = format!(
                "{}pub struct {}{}",
                attrs_kept(&s.attrs),
                s.ident,
                tokens(&s.generics)
            );
            if !shown.is_empty() || hidden {
                if hidden {
                    shown.push("..".into());
                }
                let _ = write!(text, " {{ {} }}", shown.join(", "));
            }
            push(&item_attrs(item), text);
        }
        Item::Enum(e) if is_pub(&e.vis) => {
            let mut e = e.clone();
            e.attrs.retain(kept);
            for v in e.variants.iter_mut() {
                v.attrs.retain(|a| a.path().is_ident("non_exhaustive"));
                for f in v.fields.iter_mut() {
                    f.attrs.clear();
                }
            }
            push(&item_attrs(item), tokens(&e));
        }
        Item::Trait(t) if is_pub(&t.vis) => {
            let header = format!(
                "pub trait {}{}{}",
                t.ident,
                tokens(&t.generics),
                if t.supertraits.is_empty() {
                    String::new()
                } else {
                    format!(" : {}", tokens(&t.supertraits))
                }
            );
            push(&t.attrs, header.clone());
            for ti in &t.items {
                let line = match ti {
                    TraitItem::Fn(f) => Some(tokens(&f.sig)),
                    TraitItem::Type(ty) => Some(format!("type {}{}", ty.ident, tokens(&ty.bounds))),
                    TraitItem::Const(c) => Some(format!("const {}: {}", c.ident, tokens(&c.ty))),
                    _ => None,
                };
                if let Some(line) = line {
                    push(&t.attrs, format!("{header} :: {line}"));
                }
            }
        }
        Item::Impl(i) => {
            if is_test_only(&i.attrs) {
                return;
            }
            let self_ty = tokens(&i.self_ty);
            let generics = tokens(&i.generics);
            if let Some((bang, path, _)) = &i.trait_ {
                let not = if bang.is_some() { "!" } else { "" };
                push(
                    &i.attrs,
                    format!("impl{generics} {not}{} for {self_ty}", tokens(path)),
                );
            } else {
                for ii in &i.items {
                    match ii {
                        ImplItem::Fn(f) if is_pub(&f.vis) && !is_test_only(&f.attrs) => push(
                            &i.attrs,
                            format!(
                                "impl{generics} {self_ty} :: {}{}",
                                cfgs(&f.attrs),
                                tokens(&f.sig)
                            ),
                        ),
                        ImplItem::Const(c) if is_pub(&c.vis) => push(
                            &i.attrs,
                            format!(
                                "impl{generics} {self_ty} :: const {}: {}",
                                c.ident,
                                tokens(&c.ty)
                            ),
                        ),
                        _ => {}
                    }
                }
            }
        }
        Item::Const(c) if is_pub(&c.vis) => {
            push(
                &c.attrs,
                format!("pub const {}: {}", c.ident, tokens(&c.ty)),
            );
        }
        Item::Static(s) if is_pub(&s.vis) => {
            push(
                &s.attrs,
                format!("pub static {}: {}", s.ident, tokens(&s.ty)),
            );
        }
        Item::Type(t) if is_pub(&t.vis) => {
            push(
                &t.attrs,
                format!(
                    "pub type {}{} = {}",
                    t.ident,
                    tokens(&t.generics),
                    tokens(&t.ty)
                ),
            );
        }
        Item::Use(u) if is_pub(&u.vis) => push(&u.attrs, format!("pub use {}", tokens(&u.tree))),
        Item::Macro(m) if m.attrs.iter().any(|a| a.path().is_ident("macro_export")) => {
            let name = m
                .ident
                .as_ref()
                .map(ToString::to_string)
                .unwrap_or_default();
            push(&m.attrs, format!("macro {name}!"));
        }
        Item::Mod(m) if !is_test_only(&m.attrs) => {
            let inner = format!("{module}::{}", m.ident);
            if is_pub(&m.vis) {
                push(&m.attrs, format!("pub mod {}", m.ident));
            }
            if let Some((_, content)) = &m.content {
                items(&inner, content, out);
            }
        }
        _ => {}
    }
}

/// Attributes that are API: derives (a removed `Clone` breaks users) and `non_exhaustive`.
fn kept(a: &Attribute) -> bool {
    a.path().is_ident("derive") || a.path().is_ident("non_exhaustive")
}

fn item_attrs(item: &Item) -> Vec<Attribute> {
    match item {
        Item::Struct(s) => s.attrs.clone(),
        Item::Enum(e) => e.attrs.clone(),
        _ => Vec::new(),
    }
}

fn attrs_kept(attrs: &[Attribute]) -> String {
    attrs.iter().map(|a| format!("{} ", tokens(a))).collect()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;

    fn lines_of(src: &str) -> Vec<String> {
        let parsed = syn::parse_file(src).unwrap();
        let mut out = BTreeSet::new();
        items("crate::m", &parsed.items, &mut out);
        out.into_iter().collect()
    }

    #[test]
    fn pub_items_are_listed_and_private_ones_are_not() {
        let lines = lines_of(
            r#"
            #[derive(Debug, Clone)]
            pub struct A { pub x: u32, y: u32 }
            struct Hidden;
            pub(crate) fn internal() {}
            pub fn f(a: u8) -> u8 { a }
            impl A { pub fn get(&self) -> u32 { self.x } fn private(&self) {} }
            impl Default for A { fn default() -> Self { todo!() } }
            #[cfg(test)] mod tests { pub fn t() {} }
            #[cfg(feature = "metrics")] pub use x::Y;
            "#,
        );
        assert_eq!(
            lines,
            [
                "crate::m: # [cfg (feature = \"metrics\")] pub use x :: Y",
                "crate::m: # [derive (Debug , Clone)] pub struct A { pub x : u32, .. }",
                "crate::m: fn f (a : u8) -> u8",
                "crate::m: impl A :: fn get (& self) -> u32",
                "crate::m: impl Default for A",
            ]
        );
    }

    #[test]
    fn file_paths_map_to_module_paths() {
        let src = Path::new("src");
        assert_eq!(module_path(src, Path::new("src/lib.rs")), "crate");
        assert_eq!(module_path(src, Path::new("src/a.rs")), "crate::a");
        assert_eq!(module_path(src, Path::new("src/a/b.rs")), "crate::a::b");
        assert_eq!(module_path(src, Path::new("src/a/mod.rs")), "crate::a");
    }
}
