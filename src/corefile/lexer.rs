//! Tokens of a Corefile (corefile(5), Caddy's lexer).
//!
//! ```text
//! file     = { space | comment | token }
//! space    = Unicode whitespace (as Go's unicode.IsSpace); a newline ends the current line
//! comment  = "#" { any character but newline }      (a "#" anywhere outside quotes)
//! token    = quoted | word
//! quoted   = '"' { escape | any character but '"' } '"'    (may span lines)
//! escape   = '\"'                (the only escape; "\x" stays two characters)
//! word     = { any character but whitespace and "#" }     ('"' inside a word is literal)
//! ```
//!
//! Braces are ordinary words here; the parser gives `{` and `}` their meaning, and only when
//! they are unquoted words of their own.

use std::sync::Arc;

use nom::branch::alt;
use nom::bytes::complete::{take_till, take_while1};
use nom::character::complete::char;
use nom::combinator::{recognize, value};
use nom::multi::many0;
use nom::sequence::pair;
use nom::{IResult, Parser};

use super::error::{Error, Pos};

/// One token with where it starts.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Token {
    pub text: String,
    pub pos: Pos,
    /// The line the token ends on (later than `pos.line` for quoted tokens spanning lines).
    pub end_line: u32,
    /// The column just after the token's last character on `end_line` (after the closing quote
    /// of a quoted token): where "expected another argument" points.
    pub end_col: u32,
    /// Written in quotes: never a brace, never a keyword.
    pub quoted: bool,
}

impl Token {
    /// An unquoted `{`.
    pub fn is_open(&self) -> bool {
        !self.quoted && self.text == "{"
    }

    /// An unquoted `}`.
    pub fn is_close(&self) -> bool {
        !self.quoted && self.text == "}"
    }

    /// The unquoted word `word`.
    pub fn is_word(&self, word: &str) -> bool {
        !self.quoted && self.text == word
    }
}

/// Splits `text` (the contents of `file`) into tokens.
pub fn lex(file: &Arc<str>, text: &str) -> Result<Vec<Token>, Error> {
    // A leading byte order mark is not part of the first token.
    let body = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines = LineIndex::new(text);
    let mut tokens = Vec::new();
    let mut rest = body;
    loop {
        let (after_space, _) = skip(rest).expect("skipping whitespace and comments cannot fail");
        rest = after_space;
        if rest.is_empty() {
            return Ok(tokens);
        }
        let offset = text.len() - rest.len();
        let (line, col) = lines.locate(text, offset);
        let pos = Pos::new(file, line, col);
        let (after, (tok, quoted)) = match token(rest) {
            Ok(ok) => ok,
            Err(_) => return Err(Error::syntax(&pos, "unterminated quoted string")),
        };
        let (end_line, end_col) = lines.locate(text, text.len() - after.len());
        tokens.push(Token { text: tok, pos, end_line, end_col, quoted });
        rest = after;
    }
}

/// Whitespace and comments.
fn skip(input: &str) -> IResult<&str, ()> {
    let comment = recognize(pair(char('#'), take_till(|c| c == '\n')));
    let space = take_while1(char::is_whitespace);
    value((), many0(alt((space, comment)))).parse(input)
}

/// One token: its text and whether it was quoted.
fn token(input: &str) -> IResult<&str, (String, bool)> {
    let word = take_while1(|c: char| !c.is_whitespace() && c != '#');
    alt((quoted, word.map(|w: &str| (w.to_string(), false)))).parse(input)
}

/// A quoted token; only `\"` is an escape, as in Caddy.
fn quoted(input: &str) -> IResult<&str, (String, bool)> {
    let (input, _) = char('"').parse(input)?;
    let mut out = String::new();
    let mut chars = input.char_indices();
    while let Some((i, c)) = chars.next() {
        match c {
            '"' => return Ok((&input[i + 1..], (out, true))),
            '\\' if input[i + 1..].starts_with('"') => {
                out.push('"');
                chars.next();
            }
            '\r' => {}
            c => out.push(c),
        }
    }
    Err(nom::Err::Failure(nom::error::Error::new(input, nom::error::ErrorKind::Char)))
}

/// Byte offsets of line starts, to turn a token's offset into line and column.
struct LineIndex {
    starts: Vec<usize>,
}

impl LineIndex {
    fn new(text: &str) -> LineIndex {
        let mut starts = vec![0];
        starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        LineIndex { starts }
    }

    fn locate(&self, text: &str, offset: usize) -> (u32, u32) {
        let line = self.starts.partition_point(|&s| s <= offset) - 1;
        let col = text[self.starts[line]..offset].trim_start_matches('\u{feff}').chars().count() + 1;
        (line as u32 + 1, col as u32)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn words(text: &str) -> Vec<(String, u32, u32)> {
        let file: Arc<str> = "Corefile".into();
        lex(&file, text).unwrap().into_iter().map(|t| (t.text, t.pos.line, t.pos.col)).collect()
    }

    fn w(s: &str, l: u32, c: u32) -> (String, u32, u32) {
        (s.to_string(), l, c)
    }

    #[test]
    fn splits_words_with_positions() {
        assert_eq!(
            words(".:53 {\n    whoami\n}\n"),
            vec![w(".:53", 1, 1), w("{", 1, 6), w("whoami", 2, 5), w("}", 3, 1)]
        );
    }

    #[test]
    fn comments_start_anywhere_outside_quotes() {
        assert_eq!(words("a # b c\nd#e\n\"#f\""), vec![w("a", 1, 1), w("d", 2, 1), w("#f", 3, 1)]);
    }

    #[test]
    fn quotes_escape_only_quotes() {
        let file: Arc<str> = "Corefile".into();
        let t = lex(&file, r#"log "a \"b\" \d" x"y"#).unwrap();
        assert_eq!(t[1].text, r#"a "b" \d"#);
        assert!(t[1].quoted);
        assert_eq!(t[2].text, "x\"y");
        assert!(!t[2].quoted);
    }

    #[test]
    fn quoted_tokens_may_span_lines() {
        let file: Arc<str> = "Corefile".into();
        let t = lex(&file, "a \"b\nc\" d").unwrap();
        assert_eq!(t[1].text, "b\nc");
        assert_eq!((t[1].pos.line, t[1].end_line, t[1].end_col), (1, 2, 3));
        assert_eq!(t[2].pos.line, 2);
    }

    #[test]
    fn unterminated_quote_is_an_error_at_its_start() {
        let file: Arc<str> = "Corefile".into();
        let e = lex(&file, "a\n  \"bc").unwrap_err();
        assert_eq!(e.to_string(), "Corefile:2:3: unterminated quoted string");
    }

    #[test]
    fn columns_count_characters_and_skip_bom() {
        assert_eq!(words("\u{feff}é x"), vec![w("é", 1, 1), w("x", 1, 3)]);
    }

    /// A no-break space or form feed between tokens was taken for the start of a token, which
    /// then failed as "unterminated quoted string".
    #[test]
    fn unicode_whitespace_separates_tokens() {
        assert_eq!(
            words("a\u{a0}b\u{c}c\u{b}\n\u{2003}d"),
            vec![w("a", 1, 1), w("b", 1, 3), w("c", 1, 5), w("d", 2, 2)]
        );
    }

    #[test]
    fn crlf_line_endings() {
        assert_eq!(words("a\r\nb\r\n"), vec![w("a", 1, 1), w("b", 2, 1)]);
    }
}
