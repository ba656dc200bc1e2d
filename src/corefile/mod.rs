//! The Corefile: CoreDNS's configuration format (corefile(5)), parsed into server blocks of
//! directives. Every error names `file:line:column`.

mod args;
mod error;
mod files;
mod keys;
mod lexer;
mod parse;

pub use args::{Args, format_duration, once, parse_duration};
pub use error::{Error, Errors, Pos};
pub use files::{FileKind, Files, MemoryFiles, OsFiles};
pub use keys::{ServerKey, Transport, parse_key, reverse_zones};
pub use lexer::Token;
pub use parse::{
    Block, Corefile, Directive, MAX_IMPORT_EXPANSIONS, ServerBlock, parse_file, parse_str, parse_str_with,
};
