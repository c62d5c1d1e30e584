//! What a release holds of its commit's tree: every tracked path, or (`export_ignore =
//! true`) what `git archive` would write, leaving out the paths the tree's own
//! `.gitattributes` files mark `export-ignore`. The rules are `core::export_ignore`'s;
//! this module reads the `.gitattributes` blobs as the tree walks (checkout's `plan`,
//! recycle's repair) enter each directory.

use std::rc::Rc;

use git2::{Repository, Tree};

use super::{CheckoutError, MODE_BLOB, MODE_BLOB_EXECUTABLE};
use crate::core::export_ignore::{AttributesFile, Macros};

/// Which paths of the commit's tree a release holds.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Contents {
    /// Every path the tree lists (the default).
    #[default]
    Tree,
    /// Without the paths `.gitattributes` marks `export-ignore`, as `git archive` writes.
    Archive,
}

/// The `.gitattributes` in effect in one directory of the tree being written.
#[derive(Clone, Default)]
pub(crate) struct Filter {
    on: bool,
    /// The files of the directories above, deepest first (those that say nothing about
    /// `export-ignore` are not kept).
    stack: Option<Rc<Node>>,
    /// From the root's file; `None` until the root was entered.
    macros: Option<Rc<Macros>>,
}

struct Node {
    file: AttributesFile,
    parent: Option<Rc<Node>>,
}

impl Filter {
    /// The filter above a tree's root: nothing read yet.
    pub(crate) fn new(contents: Contents) -> Filter {
        Filter {
            on: contents == Contents::Archive,
            ..Filter::default()
        }
    }

    /// The filter inside the directory `relative` (empty: the root) whose tree is `tree`:
    /// this one plus the directory's own `.gitattributes`, if it has one.
    pub(crate) fn enter(
        &self,
        repo: &Repository,
        relative: &[u8],
        tree: &Tree,
    ) -> Result<Filter, CheckoutError> {
        if !self.on {
            return Ok(self.clone());
        }
        let content = match tree.get_name_bytes(b".gitattributes") {
            // git reads a `.gitattributes` only when it is a file (never through a link).
            Some(entry) if matches!(entry.filemode(), MODE_BLOB | MODE_BLOB_EXECUTABLE) => {
                let odb = repo.odb().map_err(|source| git(relative, source))?;
                let object = odb
                    .read(entry.id())
                    .map_err(|source| git(relative, source))?;
                Some(object.data().to_vec())
            }
            _ => None,
        };
        let mut inner = self.clone();
        let file = match (&self.macros, content) {
            (None, content) => {
                let (file, macros) = AttributesFile::parse_root(content.as_deref().unwrap_or(b""));
                inner.macros = Some(Rc::new(macros));
                file
            }
            (Some(_), None) => return Ok(inner),
            (Some(macros), Some(content)) => AttributesFile::parse(relative, &content, macros),
        };
        if !file.is_empty() {
            inner.stack = Some(Rc::new(Node {
                file,
                parent: self.stack.clone(),
            }));
        }
        Ok(inner)
    }

    /// Whether the entry `name` of this filter's directory (`dir`, relative to the
    /// release's root) is left out. Free when nothing is ever left out.
    pub(crate) fn ignores(&self, dir: &[u8], name: &[u8], is_dir: bool) -> bool {
        let Some(stack) = self.stack.as_deref() else {
            return false;
        };
        let mut path = Vec::with_capacity(dir.len() + 1 + name.len());
        if !dir.is_empty() {
            path.extend_from_slice(dir);
            path.push(b'/');
        }
        path.extend_from_slice(name);
        let files = std::iter::successors(Some(stack), |node| node.parent.as_deref())
            .map(|node| &node.file);
        crate::core::export_ignore::is_ignored(files, &path, is_dir)
    }
}

fn git(relative: &[u8], source: git2::Error) -> CheckoutError {
    CheckoutError::Git {
        what: format!(
            "the .gitattributes of /{}",
            String::from_utf8_lossy(relative)
        ),
        source,
    }
}

#[cfg(test)]
mod tests;
