//! Tokens to server blocks, with environment substitution, snippets and imports.
//!
//! ```text
//! corefile   = { import | snippet | server }
//! snippet    = "(" name ")" "{" tokens "}"        (kept as tokens; spliced in by import)
//! server     = keys ( "{" directives "}" | directives EOF )   (braces optional for one block)
//! keys       = key { [","] key }           (on one line; a trailing comma continues the line;
//!                                           a quoted key is one key, commas and all)
//! directives = { import | directive }
//! directive  = name { arg } [ "{" directives "}" ]  (name and args on one line)
//! import     = "import" ( snippet-name | file | glob )        (first word of its line)
//! ```
//!
//! As in Caddy (which CoreDNS's Corefile is), an import replaces itself with the tokens of the
//! snippet or files it names, wherever a line may start. File imports are relative to the file
//! holding the import, a glob may have one wildcard, a missing file is an error and an empty glob
//! a warning. Snippet and file imports are each capped at 1000 expansions, and an import that
//! would reopen a file or snippet it came from is reported as a cycle with its chain.
//! `{$VAR}` and `{%VAR%}` are replaced in every token by the environment variable (empty if
//! unset).

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::error::{Error, Pos};
use super::files::{FileKind, Files, OsFiles};
use super::lexer::{Token, lex};

/// CoreDNS's cap on snippet and on file imports in one parse.
pub const MAX_IMPORT_EXPANSIONS: usize = 1000;

/// A parsed Corefile: server blocks in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Corefile {
    pub blocks: Vec<ServerBlock>,
    /// Things worth a log line that are not errors (a glob that matched no file).
    pub warnings: Vec<String>,
}

/// One server block: its keys (zones, ports, schemes) and its directives, in file order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServerBlock {
    pub keys: Vec<Token>,
    pub directives: Vec<Directive>,
}

/// A directive line: `name args... [{ ... }]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Directive {
    pub name: Token,
    pub args: Vec<Token>,
    pub block: Option<Block>,
}

impl Directive {
    /// The position just after the directive's last argument, for "expected more" errors.
    pub fn end_pos(&self) -> Pos {
        let last = self.args.last().unwrap_or(&self.name);
        Pos { line: last.end_line, col: last.end_col, ..last.pos.clone() }
    }
}

/// A `{ ... }` block of property lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Block {
    pub open: Pos,
    pub lines: Vec<Directive>,
}

/// Parses the Corefile at `path`, reading imports relative to it, with the process environment.
pub fn parse_file(path: &Path) -> Result<Corefile, Error> {
    let text = std::fs::read_to_string(path).map_err(|e| {
        let file: Arc<str> = path.display().to_string().into();
        Error::syntax(&Pos::new(&file, 0, 0), format!("cannot read the Corefile: {e}"))
    })?;
    parse_str(&path.display().to_string(), &text, &|k| std::env::var(k).ok())
}

/// Parses Corefile `text` named `file_name` (imports are relative to its directory), looking up
/// `{$VAR}` substitutions with `env`.
pub fn parse_str(file_name: &str, text: &str, env: &dyn Fn(&str) -> Option<String>) -> Result<Corefile, Error> {
    parse_str_with(file_name, text, env, &OsFiles)
}

/// Like [`parse_str`], with imported files read from `files` (a [`MemoryFiles`](super::MemoryFiles)
/// keeps parsing off the disk: for fuzzing and tests).
pub fn parse_str_with(
    file_name: &str,
    text: &str,
    env: &dyn Fn(&str) -> Option<String>,
    files: &dyn Files,
) -> Result<Corefile, Error> {
    let file: Arc<str> = file_name.into();
    let root = Arc::new(Frame { source: Source::File(files.canonical(Path::new(file_name))), parent: None });
    let tokens = lex(&file, text)?;
    let mut p = Parser {
        files,
        stack: Vec::new(),
        last: None,
        snippets: HashMap::new(),
        snippet_expansions: 0,
        file_expansions: 0,
        env,
        warnings: Vec::new(),
    };
    p.push(tokens, &root);
    let blocks = p.corefile()?;
    Ok(Corefile { blocks, warnings: p.warnings })
}

/// What an import splices in: a file or a snippet.
#[derive(Clone, PartialEq, Eq)]
enum Source {
    File(PathBuf),
    Snippet(String),
}

impl fmt::Display for Source {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Source::File(p) => write!(f, "{}", p.display()),
            Source::Snippet(s) => write!(f, "snippet '{s}'"),
        }
    }
}

/// The chain of imports a token came through, innermost first.
struct Frame {
    source: Source,
    parent: Option<Arc<Frame>>,
}

impl Frame {
    fn chain(&self) -> impl Iterator<Item = &Source> {
        std::iter::successors(Some(self), |f| f.parent.as_deref()).map(|f| &f.source)
    }
}

#[derive(Clone)]
struct PToken {
    tok: Token,
    frame: Arc<Frame>,
    /// The first token spliced in by an import: it starts a line wherever its text sits.
    splice_start: bool,
}

struct Parser<'e> {
    files: &'e dyn Files,
    /// Tokens still to read, the next one last.
    stack: Vec<PToken>,
    /// File and end line of the last token read, to tell when a token starts a new line.
    last: Option<(Arc<str>, u32)>,
    snippets: HashMap<String, (Vec<PToken>, Pos)>,
    snippet_expansions: usize,
    file_expansions: usize,
    env: &'e dyn Fn(&str) -> Option<String>,
    warnings: Vec<String>,
}

impl Parser<'_> {
    fn push(&mut self, tokens: Vec<Token>, frame: &Arc<Frame>) {
        let env = self.env;
        let tokens = tokens.into_iter().map(|mut tok| {
            tok.text = replace_env(&tok.text, env);
            tok
        });
        self.splice(tokens.collect(), frame);
    }

    /// Puts `tokens` next in line, the first of them starting a new line.
    fn splice(&mut self, tokens: Vec<Token>, frame: &Arc<Frame>) {
        let n = tokens.len();
        self.stack.extend(tokens.into_iter().enumerate().rev().map(|(i, tok)| PToken {
            tok,
            frame: frame.clone(),
            splice_start: i == 0 && n > 0,
        }));
    }

    fn peek(&self) -> Option<&Token> {
        self.stack.last().map(|t| &t.tok)
    }

    fn next(&mut self) -> Option<PToken> {
        let t = self.stack.pop()?;
        self.last = Some((t.tok.pos.file.clone(), t.tok.end_line));
        Some(t)
    }

    /// Whether the next token starts a new line (or a new file) after the last one read.
    fn peek_on_new_line(&self) -> bool {
        match (self.stack.last(), &self.last) {
            (Some(t), Some((file, line))) => t.splice_start || t.tok.pos.file != *file || t.tok.pos.line > *line,
            _ => true,
        }
    }

    fn corefile(&mut self) -> Result<Vec<ServerBlock>, Error> {
        let mut blocks = Vec::new();
        while let Some(t) = self.peek() {
            if t.is_word("import") && self.peek_on_new_line() {
                let imp = self.next().expect("peeked");
                self.import(imp)?;
                continue;
            }
            if t.is_close() {
                return Err(Error::syntax(&t.pos, "unexpected '}': no block is open"));
            }
            if t.is_open() {
                return Err(Error::syntax(&t.pos, "unexpected '{': expected server block keys (zones) first"));
            }
            let keys = self.keys()?;
            if let [only] = keys.as_slice()
                && let Some(name) = only.text.strip_prefix('(').and_then(|s| s.strip_suffix(')'))
            {
                self.snippet(name.to_string(), only.pos.clone())?;
                continue;
            }
            let directives = match self.peek() {
                Some(t) if t.is_open() => {
                    let open = self.next().expect("peeked").tok.pos;
                    self.directives(Some(open))?
                }
                None => Vec::new(),
                // A Corefile of one block may leave out the braces.
                Some(_) => self.directives(None)?,
            };
            blocks.push(ServerBlock { keys, directives });
        }
        Ok(blocks)
    }

    /// The keys of a server block: words up to `{` or the end of the line, a trailing comma
    /// carrying on to the next line. Commas separate keys, as do spaces.
    fn keys(&mut self) -> Result<Vec<Token>, Error> {
        let mut keys = Vec::new();
        let mut expecting_another;
        let first = self.next().expect("caller peeked a token").tok;
        expecting_another = !first.quoted && first.text.ends_with(',');
        let mut last_pos = first.pos.clone();
        split_key(first, &mut keys);
        loop {
            let on_new_line = self.peek_on_new_line();
            let at_end = self.peek().is_none_or(|t| t.is_open());
            if at_end {
                if expecting_another {
                    return Err(Error::syntax(&last_pos, "expected another key after ','"));
                }
                break;
            }
            if on_new_line && !expecting_another {
                break;
            }
            let t = self.next().expect("peeked");
            if t.tok.is_word("import") && on_new_line {
                self.import(t)?;
                continue;
            }
            expecting_another = !t.tok.quoted && t.tok.text.ends_with(',');
            last_pos = t.tok.pos.clone();
            split_key(t.tok, &mut keys);
        }
        if keys.is_empty() {
            return Err(Error::syntax(&last_pos, "expected a server block key"));
        }
        Ok(keys)
    }

    fn snippet(&mut self, name: String, pos: Pos) -> Result<(), Error> {
        match self.peek() {
            Some(t) if t.is_open() => {}
            Some(t) => return Err(Error::syntax(&t.pos, format!("expected '{{' to open snippet ({name})"))),
            None => return Err(Error::syntax(&pos, format!("expected '{{' to open snippet ({name})"))),
        }
        let open = self.next().expect("peeked").tok.pos;
        if let Some((_, first)) = self.snippets.get(&name) {
            return Err(Error::syntax(&pos, format!("snippet ({name}) is already defined at {first}")));
        }
        let mut depth = 1;
        let mut body = Vec::new();
        while let Some(t) = self.next() {
            if t.tok.is_open() {
                depth += 1;
            } else if t.tok.is_close() {
                depth -= 1;
                if depth == 0 {
                    self.snippets.insert(name, (body, pos));
                    return Ok(());
                }
            }
            body.push(t);
        }
        Err(Error::syntax(&open, "'{' is never closed"))
    }

    /// Directive lines up to the `}` closing the block opened at `open`, or to the end of input
    /// for a block without braces.
    fn directives(&mut self, open: Option<Pos>) -> Result<Vec<Directive>, Error> {
        let mut lines = Vec::new();
        loop {
            let on_new_line = self.peek_on_new_line();
            let Some(t) = self.next() else {
                return match open {
                    Some(pos) => Err(Error::syntax(&pos, "'{' is never closed")),
                    None => Ok(lines),
                };
            };
            if t.tok.is_close() {
                return match open {
                    Some(_) => Ok(lines),
                    None => Err(Error::syntax(&t.tok.pos, "unexpected '}': no block is open")),
                };
            }
            if t.tok.is_word("import") && on_new_line {
                self.import(t)?;
                continue;
            }
            if t.tok.is_open() {
                return Err(Error::syntax(&t.tok.pos, "unexpected '{': a block must follow a directive on its line"));
            }
            lines.push(self.directive(t.tok)?);
        }
    }

    fn directive(&mut self, name: Token) -> Result<Directive, Error> {
        let mut args = Vec::new();
        let mut block = None;
        while !self.peek_on_new_line() {
            let Some(t) = self.peek() else { break };
            if t.is_close() {
                break;
            }
            let t = self.next().expect("peeked").tok;
            if t.is_open() {
                let lines = self.directives(Some(t.pos.clone()))?;
                block = Some(Block { open: t.pos, lines });
                break;
            }
            args.push(t);
        }
        Ok(Directive { name, args, block })
    }

    /// Replaces `import ARG` with the snippet's or files' tokens.
    fn import(&mut self, imp: PToken) -> Result<(), Error> {
        let pos = imp.tok.pos.clone();
        if self.peek_on_new_line() || self.peek().is_some_and(|t| t.is_close()) {
            return Err(Error::syntax(&pos, "import: expected a file, glob pattern or snippet name"));
        }
        let arg = self.next().expect("peeked").tok;
        if !self.peek_on_new_line() && self.peek().is_some_and(|t| !t.is_close()) {
            let extra = self.peek().expect("peeked").pos.clone();
            return Err(Error::syntax(
                &extra,
                "import: takes only one argument (a file, glob pattern or snippet name)",
            ));
        }
        if arg.text.is_empty() {
            return Err(Error::syntax(&arg.pos, "import: requires a non-empty path"));
        }
        if let Some((body, _)) = self.snippets.get(&arg.text) {
            let source = Source::Snippet(arg.text.clone());
            check_cycle(&imp.frame, &source, &pos)?;
            self.snippet_expansions += 1;
            if self.snippet_expansions > MAX_IMPORT_EXPANSIONS {
                return Err(Error::syntax(
                    &pos,
                    format!("maximum snippet import depth ({MAX_IMPORT_EXPANSIONS}) exceeded"),
                ));
            }
            let frame = Arc::new(Frame { source, parent: Some(imp.frame.clone()) });
            let body: Vec<Token> = body.iter().map(|t| t.tok.clone()).collect();
            // Snippet tokens had their environment substituted when they were first read.
            self.splice(body, &frame);
            return Ok(());
        }
        self.import_files(&imp, &arg)
    }

    fn import_files(&mut self, imp: &PToken, arg: &Token) -> Result<(), Error> {
        let pos = &imp.tok.pos;
        let base = Path::new(&*pos.file).parent().unwrap_or(Path::new(""));
        let pattern = base.join(&arg.text);
        let pattern_str = pattern.to_string_lossy().into_owned();
        // CoreDNS (caddy#2096): a pattern with many wildcards can take too long to expand.
        if pattern_str.matches('*').count() > 1
            || pattern_str.matches('?').count() > 1
            || (pattern_str.contains('[') && pattern_str.contains(']'))
        {
            return Err(Error::syntax(
                &arg.pos,
                format!("import: glob pattern may only contain one wildcard (*): {pattern_str}"),
            ));
        }
        let has_wildcard = pattern_str.contains(['*', '?']);
        let mut matches: Vec<PathBuf> = if has_wildcard {
            self.files
                .glob(&pattern_str)
                .map_err(|e| Error::syntax(&arg.pos, format!("import: bad glob pattern {pattern_str}: {e}")))?
        } else if self.files.kind(&pattern).is_some() {
            vec![pattern.clone()]
        } else {
            return Err(Error::syntax(&arg.pos, format!("import: file not found: {pattern_str}")));
        };
        matches.sort();
        if matches.is_empty() {
            self.warnings.push(format!("{}: import: no files match glob pattern {pattern_str}", arg.pos));
        }
        let mut spliced = Vec::new();
        for path in matches {
            let source = Source::File(self.files.canonical(&path));
            check_cycle(&imp.frame, &source, pos)?;
            self.file_expansions += 1;
            if self.file_expansions > MAX_IMPORT_EXPANSIONS {
                return Err(Error::syntax(
                    pos,
                    format!("maximum file import depth ({MAX_IMPORT_EXPANSIONS}) exceeded"),
                ));
            }
            match self.files.kind(&path) {
                Some(FileKind::File) => {}
                Some(FileKind::Dir) => {
                    return Err(Error::syntax(&arg.pos, format!("import: {} is a directory", path.display())));
                }
                // Reading a device or FIFO could block or never end.
                _ => {
                    return Err(Error::syntax(&arg.pos, format!("import: {} is not a regular file", path.display())));
                }
            }
            let text = self
                .files
                .read(&path)
                .map_err(|e| Error::syntax(&arg.pos, format!("import: cannot read {}: {e}", path.display())))?;
            let file: Arc<str> = path.to_string_lossy().into();
            let frame = Arc::new(Frame { source, parent: Some(imp.frame.clone()) });
            spliced.push((lex(&file, &text)?, frame));
        }
        for (tokens, frame) in spliced.into_iter().rev() {
            self.push(tokens, &frame);
        }
        Ok(())
    }
}

/// Splits an unquoted key token on commas (`a,b` and `a, b` are two keys), dropping empty
/// pieces. Each piece gets its own column when the token is as written; a token whose text came
/// from the environment has no columns of its own, and its pieces all point at it.
fn split_key(t: Token, keys: &mut Vec<Token>) {
    if t.quoted || !t.text.contains(',') {
        if !t.text.is_empty() {
            keys.push(t);
        }
        return;
    }
    let as_written = t.text.chars().count() as u32 == t.end_col.saturating_sub(t.pos.col);
    let mut col = t.pos.col;
    for piece in t.text.split(',') {
        let end_col = col + piece.chars().count() as u32;
        if !piece.is_empty() {
            let (start, end) = if as_written { (col, end_col) } else { (t.pos.col, t.end_col) };
            keys.push(Token {
                text: piece.to_string(),
                pos: Pos { col: start, ..t.pos.clone() },
                end_col: end,
                ..t.clone()
            });
        }
        col = end_col + 1;
    }
}

fn check_cycle(frame: &Arc<Frame>, source: &Source, pos: &Pos) -> Result<(), Error> {
    if frame.chain().any(|s| s == source) {
        let mut chain: Vec<String> = frame.chain().map(|s| s.to_string()).collect();
        chain.reverse();
        chain.push(source.to_string());
        return Err(Error::syntax(pos, format!("import cycle: {}", chain.join(" -> "))));
    }
    Ok(())
}

/// Substitutes `{%VAR%}` and then `{$VAR}` with the variable's value (empty when unset).
fn replace_env(s: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    let s = replace_refs(s, "{%", "%}", env);
    replace_refs(&s, "{$", "}", env)
}

fn replace_refs(s: &str, open: &str, close: &str, env: &dyn Fn(&str) -> Option<String>) -> String {
    if !s.contains(open) {
        return s.to_string();
    }
    let mut out = String::with_capacity(s.len());
    let mut rest = s;
    while let Some(start) = rest.find(open) {
        let after = &rest[start + open.len()..];
        match after.find(close) {
            Some(end) if end > 0 => {
                out.push_str(&rest[..start]);
                out.push_str(&env(&after[..end]).unwrap_or_default());
                rest = &after[end + close.len()..];
            }
            _ => break,
        }
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_env(_: &str) -> Option<String> {
        None
    }

    fn parse(text: &str) -> Result<Corefile, Error> {
        parse_str("Corefile", text, &no_env)
    }

    /// A compact rendering: `keys: dir args {sub args} ; ...`.
    fn render(c: &Corefile) -> Vec<String> {
        fn dirs(d: &[Directive]) -> String {
            d.iter()
                .map(|d| {
                    let mut s = d.name.text.clone();
                    for a in &d.args {
                        s.push(' ');
                        s.push_str(&a.text);
                    }
                    if let Some(b) = &d.block {
                        s.push_str(&format!(" {{{}}}", dirs(&b.lines)));
                    }
                    s
                })
                .collect::<Vec<_>>()
                .join("; ")
        }
        c.blocks
            .iter()
            .map(|b| {
                let keys: Vec<&str> = b.keys.iter().map(|k| k.text.as_str()).collect();
                format!("{}: {}", keys.join(" "), dirs(&b.directives))
            })
            .collect()
    }

    #[test]
    fn blocks_directives_and_nested_blocks() {
        let c = parse(
            "example.org:1053 example.net {\n  hosts /etc/hosts {\n    fallthrough\n    ttl 5\n  }\n  log\n}\n.:53 {\n whoami\n}\n",
        )
        .unwrap();
        assert_eq!(
            render(&c),
            ["example.org:1053 example.net: hosts /etc/hosts {fallthrough; ttl 5}; log", ".:53: whoami"]
        );
    }

    #[test]
    fn one_block_without_braces() {
        let c = parse("example.org\nwhoami\nlog\n").unwrap();
        assert_eq!(render(&c), ["example.org: whoami; log"]);
        assert_eq!(render(&parse("example.org\n").unwrap()), ["example.org: "]);
    }

    #[test]
    fn commas_separate_keys_and_a_trailing_comma_continues() {
        let c = parse("a.org,b.org, c.org,\n  d.org {\n whoami\n}").unwrap();
        assert_eq!(render(&c), ["a.org b.org c.org d.org: whoami"]);
        assert_eq!(c.blocks[0].keys[1].pos.col, 7);
        let e = parse("a.org, {\n}").unwrap_err();
        assert_eq!(e.to_string(), "Corefile:1:1: expected another key after ','");
    }

    /// Key pieces were given columns counted through newlines and environment values, pointing
    /// past the end of their line (found by the corefile fuzz target's position check).
    #[test]
    fn key_positions_stay_on_their_line() {
        let env = |k: &str| (k == "ZONES").then(|| "a.org,b.org".to_string());
        let c = parse_str("Corefile", "{$ZONES},c.org {\n}", &env).unwrap();
        let keys: Vec<String> = c.blocks[0].keys.iter().map(|k| format!("{} {}", k.text, k.pos)).collect();
        assert_eq!(keys, ["a.org Corefile:1:1", "b.org Corefile:1:1", "c.org Corefile:1:1"]);
        let c = parse("x.org \"a,\nb\" {\n}").unwrap();
        let keys: Vec<String> = c.blocks[0].keys.iter().map(|k| format!("{} {}", k.text, k.pos)).collect();
        assert_eq!(keys, ["x.org Corefile:1:1", "a,\nb Corefile:1:7"]);
    }

    #[test]
    fn one_line_blocks_close_on_brace() {
        let c = parse(". { hosts { 1.2.3.4 a.b } \n log }").unwrap();
        assert_eq!(render(&c), [".: hosts {1.2.3.4 a.b}; log"]);
    }

    #[test]
    fn snippets_are_spliced_where_imported() {
        let c = parse("(common) {\n  log\n  errors\n}\n. {\n  import common\n  whoami\n}\n").unwrap();
        assert_eq!(render(&c), [".: log; errors; whoami"]);
        // Tokens keep the snippet's positions.
        assert_eq!(c.blocks[0].directives[0].name.pos.line, 2);
    }

    #[test]
    fn snippet_errors() {
        let e = parse("(a) {\n import a\n}\n. {\n import a\n}").unwrap_err();
        assert_eq!(e.to_string(), "Corefile:2:2: import cycle: Corefile -> snippet 'a' -> snippet 'a'");
        let e = parse("(a) {\n}\n(a) {\n}").unwrap_err();
        assert_eq!(e.to_string(), "Corefile:3:1: snippet (a) is already defined at Corefile:1:1");
        let e = parse("(a) {\n log\n").unwrap_err();
        assert_eq!(e.to_string(), "Corefile:1:5: '{' is never closed");
    }

    #[test]
    fn mutual_snippet_cycle_is_reported_with_its_chain() {
        let e = parse("(a) {\n import b\n}\n(b) {\n import a\n}\n. {\n import a\n}").unwrap_err();
        assert_eq!(e.to_string(), "Corefile:5:2: import cycle: Corefile -> snippet 'a' -> snippet 'b' -> snippet 'a'");
    }

    #[test]
    fn environment_substitution() {
        let env = |k: &str| match k {
            "ZONE" => Some("example.org".to_string()),
            "PORT" => Some("1053".to_string()),
            _ => None,
        };
        let c = parse_str("Corefile", "{$ZONE}:{%PORT%} {\n  log {$MISSING}x\n}", &env).unwrap();
        assert_eq!(render(&c), ["example.org:1053: log x"]);
    }

    #[test]
    fn structural_errors_have_positions() {
        let cases = [
            ("}", "Corefile:1:1: unexpected '}': no block is open"),
            ("{\n}", "Corefile:1:1: unexpected '{': expected server block keys (zones) first"),
            (". {\n  whoami\n", "Corefile:1:3: '{' is never closed"),
            (". {\n  hosts {\n", "Corefile:2:9: '{' is never closed"),
            (". {\n  {\n}\n}", "Corefile:2:3: unexpected '{': a block must follow a directive on its line"),
            (". {\n import\n}", "Corefile:2:2: import: expected a file, glob pattern or snippet name"),
            (
                ". {\n import a b\n}",
                "Corefile:2:11: import: takes only one argument (a file, glob pattern or snippet name)",
            ),
        ];
        for (text, want) in cases {
            assert_eq!(parse(text).unwrap_err().to_string(), want, "{text:?}");
        }
    }

    #[test]
    fn file_imports_globs_and_cycles() {
        let dir = tempfile::tempdir().unwrap();
        let d = dir.path();
        std::fs::create_dir(d.join("conf.d")).unwrap();
        std::fs::write(d.join("conf.d/a.conf"), "example.a {\n whoami\n}\n").unwrap();
        std::fs::write(d.join("conf.d/b.conf"), "example.b {\n log\n}\n").unwrap();
        std::fs::write(d.join("common"), "errors\n").unwrap();
        std::fs::write(d.join("loop1"), "import loop2\n").unwrap();
        std::fs::write(d.join("loop2"), "import loop1\n").unwrap();
        let main = d.join("Corefile");
        let name = main.to_string_lossy().into_owned();
        let text = ". {\n import common\n}\nimport conf.d/*.conf\nimport none/*.conf\n";
        let c = parse_str(&name, text, &no_env).unwrap();
        assert_eq!(render(&c), [".: errors", "example.a: whoami", "example.b: log"]);
        assert_eq!(c.warnings.len(), 1);
        assert!(c.blocks[1].keys[0].pos.file.ends_with("conf.d/a.conf"));

        let e = parse_str(&name, ". {\n import missing\n}", &no_env).unwrap_err();
        assert!(e.to_string().contains(":2:9: import: file not found:"), "{e}");
        let e = parse_str(&name, ". {\n import */*.conf\n}", &no_env).unwrap_err();
        assert!(e.to_string().contains("may only contain one wildcard"), "{e}");
        let e = parse_str(&name, "import loop1\n", &no_env).unwrap_err();
        assert!(e.to_string().contains("import cycle: "), "{e}");
        assert!(e.to_string().contains("loop1 -> "), "{e}");
    }

    /// `import /dev/zero` read forever and `import` of a FIFO blocked: only regular files are read.
    #[test]
    fn import_of_a_device_is_an_error_not_a_hang() {
        let e = parse(". {\n import /dev/zero\n}").unwrap_err();
        assert_eq!(e.to_string(), "Corefile:2:9: import: /dev/zero is not a regular file");
    }

    #[test]
    fn imports_from_memory_never_touch_the_disk() {
        use crate::corefile::MemoryFiles;
        let files = MemoryFiles::new()
            .with("/etc/coredns/Corefile", "")
            .with("/etc/coredns/conf.d/a.conf", "a.org {\n import ../common\n}\n")
            .with("/etc/coredns/common", "whoami\n")
            .with("/etc/coredns/self", "import self\n");
        let main = "/etc/coredns/Corefile";
        let c = parse_str_with(main, "import conf.d/*.conf\n", &no_env, &files).unwrap();
        assert_eq!(render(&c), ["a.org: whoami"]);
        assert_eq!(c.blocks[0].directives[0].name.pos.to_string(), "/etc/coredns/conf.d/../common:1:1");
        let e = parse_str_with(main, "import self\n", &no_env, &files).unwrap_err();
        assert_eq!(
            e.to_string(),
            "/etc/coredns/self:1:1: import cycle: /etc/coredns/Corefile -> /etc/coredns/self -> /etc/coredns/self"
        );
        let e = parse_str_with(main, "import /etc/passwd\n", &no_env, &files).unwrap_err();
        assert_eq!(e.to_string(), "/etc/coredns/Corefile:1:8: import: file not found: /etc/passwd");
    }
}
