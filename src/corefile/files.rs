//! Where `import` finds files: the file system in production, a map in memory for fuzzing and
//! tests, so that parsing untrusted text never touches the disk.

use std::collections::BTreeMap;
use std::io;
use std::path::{Component, Path, PathBuf};

/// What a path is, as far as `import` cares.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FileKind {
    /// A regular file: the only kind that is read.
    File,
    Dir,
    /// A device, FIFO or socket: reading one could block forever or never end (`/dev/zero`).
    Other,
}

/// The files an import may read. Implementations must not block on anything but the disk.
pub trait Files {
    /// What `path` is, following symbolic links; `None` if it does not exist.
    fn kind(&self, path: &Path) -> Option<FileKind>;
    /// The regular files matching a glob `pattern`, in any order.
    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String>;
    /// The text of the regular file at `path`.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// `path` in the one spelling used to recognise an import cycle.
    fn canonical(&self, path: &Path) -> PathBuf;
}

/// The file system.
#[derive(Clone, Copy, Debug, Default)]
pub struct OsFiles;

impl Files for OsFiles {
    fn kind(&self, path: &Path) -> Option<FileKind> {
        let meta = std::fs::metadata(path).ok()?;
        Some(if meta.is_file() {
            FileKind::File
        } else if meta.is_dir() {
            FileKind::Dir
        } else {
            FileKind::Other
        })
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let paths = glob::glob(pattern).map_err(|e| e.to_string())?;
        Ok(paths.filter_map(Result::ok).filter(|p| self.kind(p) == Some(FileKind::File)).collect())
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf())
    }
}

/// Files held in memory, keyed by path; a directory exists when a file lies under it. Paths
/// are compared after removing `.` and resolving `..` lexically.
#[derive(Clone, Debug, Default)]
pub struct MemoryFiles {
    files: BTreeMap<PathBuf, String>,
}

impl MemoryFiles {
    pub fn new() -> MemoryFiles {
        MemoryFiles::default()
    }

    /// Adds (or replaces) the file at `path`.
    pub fn with(mut self, path: impl AsRef<Path>, text: impl Into<String>) -> MemoryFiles {
        self.files.insert(normalize(path.as_ref()), text.into());
        self
    }
}

impl Files for MemoryFiles {
    fn kind(&self, path: &Path) -> Option<FileKind> {
        let path = normalize(path);
        if self.files.contains_key(&path) {
            Some(FileKind::File)
        } else if self.files.keys().any(|f| f.starts_with(&path)) {
            Some(FileKind::Dir)
        } else {
            None
        }
    }

    fn glob(&self, pattern: &str) -> Result<Vec<PathBuf>, String> {
        let pattern = glob::Pattern::new(pattern).map_err(|e| e.to_string())?;
        let opts = glob::MatchOptions { require_literal_separator: true, ..Default::default() };
        Ok(self.files.keys().filter(|p| pattern.matches_path_with(p, opts)).cloned().collect())
    }

    fn read(&self, path: &Path) -> io::Result<String> {
        self.files.get(&normalize(path)).cloned().ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn canonical(&self, path: &Path) -> PathBuf {
        normalize(path)
    }
}

/// `path` without `.` components and with `..` applied to the component before it.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_files_have_directories_and_globs() {
        let fs = MemoryFiles::new().with("/conf/a.conf", "a").with("/conf/./b.conf", "b").with("/conf/d/c.conf", "c");
        assert_eq!(fs.kind(Path::new("/conf/x/../a.conf")), Some(FileKind::File));
        assert_eq!(fs.kind(Path::new("/conf/d")), Some(FileKind::Dir));
        assert_eq!(fs.kind(Path::new("/nope")), None);
        let mut got = fs.glob("/conf/*.conf").unwrap();
        got.sort();
        assert_eq!(got, [PathBuf::from("/conf/a.conf"), PathBuf::from("/conf/b.conf")]);
        assert_eq!(fs.read(Path::new("/conf/b.conf")).unwrap(), "b");
    }

    #[test]
    fn devices_are_not_regular_files() {
        assert_eq!(OsFiles.kind(Path::new("/dev/null")), Some(FileKind::Other));
        assert_eq!(OsFiles.kind(Path::new("/")), Some(FileKind::Dir));
    }
}
