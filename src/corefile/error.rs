//! Positions and the one error type of configuration: syntax and setup errors alike name
//! `file:line:column`, so an operator can go straight to the offending token.

use std::fmt;
use std::sync::Arc;

/// Where a token starts: the file it came from (an imported file keeps its own name), the line
/// and the column, both counted from 1, columns in characters. Line 0 stands for the whole file
/// (it cannot be read) and is displayed as the file name alone.
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u32,
    pub col: u32,
}

impl Pos {
    pub fn new(file: &Arc<str>, line: u32, col: u32) -> Pos {
        Pos { file: file.clone(), line, col }
    }

    /// `path` as an argument at this position names it: a relative path is taken from the
    /// directory of the file the argument is in (the Corefile, or the file it imported).
    pub fn resolve_path(&self, path: &str) -> std::path::PathBuf {
        let path = std::path::Path::new(path);
        match std::path::Path::new(&*self.file).parent() {
            Some(dir) if path.is_relative() => dir.join(path),
            _ => path.to_path_buf(),
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.line {
            0 => write!(f, "{}", self.file),
            line => write!(f, "{}:{line}:{}", self.file, self.col),
        }
    }
}

impl fmt::Debug for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// A configuration error: `Corefile:7:9: kubernetes: unknown property 'podz'`.
///
/// `plugin` names the directive whose setup rejected the input; syntax errors have none.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub struct Error {
    pub pos: Pos,
    pub plugin: Option<&'static str>,
    pub message: String,
}

impl Error {
    /// A syntax error at `pos`.
    pub fn syntax(pos: &Pos, message: impl Into<String>) -> Error {
        Error { pos: pos.clone(), plugin: None, message: message.into() }
    }

    /// A setup error of `plugin` at `pos`.
    pub fn setup(plugin: &'static str, pos: &Pos, message: impl Into<String>) -> Error {
        Error { pos: pos.clone(), plugin: Some(plugin), message: message.into() }
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.plugin {
            Some(p) => write!(f, "{}: {}: {}", self.pos, p, self.message),
            None => write!(f, "{}: {}", self.pos, self.message),
        }
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

/// Several errors, for `-validate` and reload logs, which report all of them at once.
#[derive(Clone, PartialEq, Eq, thiserror::Error)]
pub struct Errors(pub Vec<Error>);

impl fmt::Display for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl fmt::Debug for Errors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl From<Error> for Errors {
    fn from(e: Error) -> Errors {
        Errors(vec![e])
    }
}
