//! Directory walking: ignore files, globs, hidden files, symlinks, and a deterministic order.
//!
//! The `ignore` crate (ripgrep's walker) does the hard parts: nested `.gitignore` files with
//! negations, `.ignore`, `.git/info/exclude`, git's global excludes, and symlink loop
//! detection. This module adds what the reader needs on top: `--include`/`--exclude` globs
//! that behave like gitignore patterns, each directory's README first and then by path, and
//! every walker error turned into a per-path [`Error`] so the walk goes on.

use std::cmp::Ordering;
use std::ops::ControlFlow;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use globset::{Glob, GlobSet, GlobSetBuilder};

use crate::error::{Error, Result, display_path};
use crate::options::Options;

/// One thing the walk found.
#[derive(Debug)]
pub(crate) enum Found {
    /// A regular file (or a link to one).
    File {
        /// The path as the user would name it: the input directory joined with `rel`.
        path: PathBuf,
        /// Path relative to the input directory, with `/` separators.
        rel: String,
        /// Size in bytes.
        size: u64,
    },
    /// A path that could not be walked or is not a regular file.
    Failed(Error),
}

/// Compiled `--include`/`--exclude` globs.
#[derive(Debug, Default)]
pub(crate) struct Globs {
    include_name: GlobSet,
    include_path: GlobSet,
    exclude_name: GlobSet,
    exclude_path: GlobSet,
    has_include: bool,
}

impl Globs {
    pub(crate) fn new(include: &[String], exclude: &[String]) -> Result<Self> {
        let (include_name, include_path) = compile(include)?;
        let (exclude_name, exclude_path) = compile(exclude)?;
        Ok(Globs {
            include_name,
            include_path,
            exclude_name,
            exclude_path,
            has_include: !include.is_empty(),
        })
    }

    /// Name globs match any component of the path (so `target` covers everything below a
    /// `target` directory); path globs match the path or one of its ancestors.
    fn matches(names: &GlobSet, paths: &GlobSet, rel: &str) -> bool {
        rel.split('/').any(|c| names.is_match(c)) || paths.is_match(rel)
    }

    fn excluded(&self, rel: &str) -> bool {
        Self::matches(&self.exclude_name, &self.exclude_path, rel)
    }

    fn included(&self, rel: &str) -> bool {
        !self.has_include || Self::matches(&self.include_name, &self.include_path, rel)
    }
}

fn compile(globs: &[String]) -> Result<(GlobSet, GlobSet)> {
    let (mut names, mut paths) = (GlobSetBuilder::new(), GlobSetBuilder::new());
    for g in globs {
        let pat = g.trim_start_matches("./").trim_end_matches('/');
        let bad = |e: globset::Error| Error::InvalidGlob {
            glob: g.clone(),
            reason: e.kind().to_string(),
        };
        if pat.contains('/') {
            let pat = pat.trim_start_matches('/');
            paths.add(Glob::new(pat).map_err(bad)?);
            // `dir/**` style: also match everything below a matched directory.
            paths.add(Glob::new(&format!("{pat}/**")).map_err(bad)?);
        } else {
            names.add(Glob::new(pat).map_err(bad)?);
        }
    }
    let build = |b: GlobSetBuilder| {
        b.build().map_err(|e| Error::InvalidGlob {
            glob: globs.join(" "),
            reason: e.to_string(),
        })
    };
    Ok((build(names)?, build(paths)?))
}

/// Whether a file name is a README (`README`, `readme.md`, `ReadMe.rst`…).
pub(crate) fn is_readme(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    lower == "readme" || (lower.starts_with("readme.") && lower.len() > 7)
}

/// README first, then by name (byte order, as `git ls-files` sorts).
fn order(a: &Path, b: &Path) -> Ordering {
    let key = |p: &Path| {
        let name = p
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default();
        (!is_readme(&name), name)
    };
    key(a).cmp(&key(b))
}

/// Walks `root`, calling `f` with every file (in order) and every error. `saved_pages`
/// prunes browsers' `NAME_files/` asset folders that sit beside a `NAME.html`.
pub(crate) fn walk(
    root: &Path,
    opts: &Options,
    globs: Arc<Globs>,
    saved_pages: bool,
    f: &mut dyn FnMut(Found) -> ControlFlow<()>,
) {
    let mut b = ignore::WalkBuilder::new(root);
    let ig = opts.respect_ignore_files;
    b.hidden(!opts.hidden)
        .follow_links(opts.follow_links)
        .git_ignore(ig)
        .git_global(ig)
        .git_exclude(ig)
        .ignore(ig)
        .parents(ig)
        .require_git(false)
        .sort_by_file_path(order);
    let root_buf = root.to_path_buf();
    b.filter_entry(move |e| {
        if e.depth() == 0 {
            return true;
        }
        let name = e.file_name().to_string_lossy();
        let is_dir = e.file_type().is_some_and(|t| t.is_dir());
        if is_dir && name == ".git" {
            return false;
        }
        if is_dir
            && saved_pages
            && let Some(stem) = name.strip_suffix("_files")
        {
            let parent = e.path().parent().unwrap_or(Path::new(""));
            if ["html", "htm", "xhtml", "mhtml"]
                .iter()
                .any(|x| parent.join(format!("{stem}.{x}")).exists())
            {
                return false;
            }
        }
        let Some(rel) = rel_of(&root_buf, e.path()) else {
            return true;
        };
        !globs.excluded(&rel) && (is_dir || globs.included(&rel))
    });
    for entry in b.build() {
        let found = match entry {
            Err(e) => Found::Failed(walk_error(root, e)),
            Ok(e) => {
                let Some(ft) = e.file_type() else { continue };
                if ft.is_dir() {
                    continue;
                }
                let path = e.path().to_path_buf();
                let rel = rel_of(root, &path).unwrap_or_else(|| display_path(&path));
                if !ft.is_file() {
                    if ft.is_symlink() {
                        // Only seen when not following links: the target is not read.
                        Found::Failed(Error::Symlink {
                            at: display_path(&path),
                        })
                    } else {
                        Found::Failed(Error::NotRegular {
                            at: display_path(&path),
                        })
                    }
                } else {
                    match e.metadata() {
                        Ok(m) => Found::File {
                            path,
                            rel,
                            size: m.len(),
                        },
                        Err(err) => Found::Failed(walk_error(root, err)),
                    }
                }
            }
        };
        if f(found).is_break() {
            return;
        }
    }
}

/// `path` relative to `root` with `/` separators.
pub(crate) fn rel_of(root: &Path, path: &Path) -> Option<String> {
    let rel = path.strip_prefix(root).ok()?;
    let parts: Vec<_> = rel.components().map(|c| c.as_os_str().to_string_lossy()).collect();
    Some(parts.join("/"))
}

/// Turns a walker error into ours, keeping the innermost path.
fn walk_error(root: &Path, e: ignore::Error) -> Error {
    fn inner(e: ignore::Error, path: Option<PathBuf>) -> (Option<PathBuf>, std::result::Result<Error, ignore::Error>) {
        match e {
            ignore::Error::WithPath { path, err } => inner(*err, Some(path)),
            ignore::Error::WithDepth { err, .. } | ignore::Error::WithLineNumber { err, .. } => inner(*err, path),
            ignore::Error::Loop { ancestor, child } => (
                Some(child.clone()),
                Ok(Error::SymlinkLoop {
                    at: display_path(&child),
                    ancestor: Some(ancestor),
                }),
            ),
            ignore::Error::Partial(mut errs) if errs.len() == 1 => inner(errs.remove(0), path),
            ignore::Error::Io(io) => {
                let at = path.as_deref().map(display_path).unwrap_or_default();
                // The walker wraps OS errors and loses their code; ask the OS again so a
                // self-referential link reads as a loop and not as "unreadable".
                let looped = path
                    .as_deref()
                    .is_some_and(|p| std::fs::metadata(p).is_err_and(|e| crate::error::is_eloop(&e)));
                let err = if looped {
                    Error::SymlinkLoop { at, ancestor: None }
                } else {
                    Error::io(at, io)
                };
                (path, Ok(err))
            }
            other => (path, Err(other)),
        }
    }
    match inner(e, None) {
        (_, Ok(err)) => err,
        (path, Err(other)) => Error::Walk {
            at: path.as_deref().map(display_path).unwrap_or_else(|| display_path(root)),
            reason: other.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_names_and_paths() {
        let g = Globs::new(
            &["*.rs".into(), "docs/".into()],
            &["target".into(), "src/gen/*.rs".into()],
        )
        .unwrap();
        assert!(g.included("src/a.rs") && g.included("docs/x/y.md") && !g.included("a.py"));
        assert!(g.excluded("target") && g.excluded("a/target") && g.excluded("src/gen/x.rs"));
        assert!(!g.excluded("src/x.rs"));
        assert!(Globs::new(&["a[".into()], &[]).is_err());
    }

    #[test]
    fn readme_first() {
        assert_eq!(
            order(Path::new("a/README.md"), Path::new("a/Cargo.toml")),
            Ordering::Less
        );
        assert_eq!(order(Path::new("a/b.rs"), Path::new("a/a.rs")), Ordering::Greater);
        assert!(is_readme("readme") && is_readme("README"));
        assert!(!is_readme("readmefirst.txt") && is_readme("ReadMe.rst"));
    }
}
