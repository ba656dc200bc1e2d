//! Label selectors (`labels`, `namespace_labels`), checked at parse time and sent to the API
//! server, which does the selecting.
//!
//! The grammar is the one `kubectl -l` and CoreDNS (`meta.ParseToLabelSelector`) accept:
//!
//! ```text
//! selector    = requirement *( "," requirement )
//! requirement = key | "!" key | key ( "=" | "==" | "!=" ) value
//!             | key ( "in" | "notin" ) "(" [ value *( "," value ) ] ")"
//! key         = [ dns-subdomain "/" ] name          name: 1-63 of [A-Za-z0-9_.-], alphanumeric ends
//! value       = name or nothing
//! ```
//!
//! with whitespace allowed between tokens. `>` and `<`, which `kubectl` accepts, are rejected as
//! CoreDNS rejects them.

use std::fmt;

/// A parsed selector; `Display` writes it in the form sent to the API server.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Selector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Requirement {
    Exists(String),
    NotExists(String),
    Equals(String, String),
    NotEquals(String, String),
    In(String, Vec<String>),
    NotIn(String, Vec<String>),
}

impl Selector {
    /// Parses `text`; the error says what is wrong, for the caller to position.
    pub fn parse(text: &str) -> Result<Selector, String> {
        let mut p = Parser { s: text.as_bytes(), at: 0 };
        let mut reqs = Vec::new();
        loop {
            reqs.push(p.requirement()?);
            p.space();
            match p.peek() {
                None => break,
                Some(b',') => p.at += 1,
                Some(c) => return Err(format!("unexpected '{}' at offset {}", c as char, p.at)),
            }
        }
        Ok(Selector(reqs))
    }
}

impl fmt::Display for Selector {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, r) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            match r {
                Requirement::Exists(k) => write!(f, "{k}")?,
                Requirement::NotExists(k) => write!(f, "!{k}")?,
                Requirement::Equals(k, v) => write!(f, "{k}={v}")?,
                Requirement::NotEquals(k, v) => write!(f, "{k}!={v}")?,
                Requirement::In(k, vs) => write!(f, "{k} in ({})", vs.join(","))?,
                Requirement::NotIn(k, vs) => write!(f, "{k} notin ({})", vs.join(","))?,
            }
        }
        Ok(())
    }
}

struct Parser<'a> {
    s: &'a [u8],
    at: usize,
}

impl Parser<'_> {
    fn peek(&self) -> Option<u8> {
        self.s.get(self.at).copied()
    }

    fn space(&mut self) {
        while self.peek().is_some_and(|c| c.is_ascii_whitespace()) {
            self.at += 1;
        }
    }

    /// A run of characters that can be part of a key or value.
    fn word(&mut self) -> &str {
        let start = self.at;
        while self.peek().is_some_and(|c| c.is_ascii_alphanumeric() || b"-_./".contains(&c)) {
            self.at += 1;
        }
        std::str::from_utf8(&self.s[start..self.at]).expect("ASCII")
    }

    fn requirement(&mut self) -> Result<Requirement, String> {
        self.space();
        if self.peek() == Some(b'!') {
            self.at += 1;
            self.space();
            return Ok(Requirement::NotExists(key(self.word())?));
        }
        let k = key(self.word())?;
        self.space();
        match self.peek() {
            None | Some(b',') => return Ok(Requirement::Exists(k)),
            Some(b'=') => {
                self.at += 1;
                if self.peek() == Some(b'=') {
                    self.at += 1;
                }
                self.space();
                return Ok(Requirement::Equals(k, value(self.word())?));
            }
            Some(b'!') if self.s.get(self.at + 1) == Some(&b'=') => {
                self.at += 2;
                self.space();
                return Ok(Requirement::NotEquals(k, value(self.word())?));
            }
            Some(c @ (b'<' | b'>')) => {
                return Err(format!("'{}' is not a valid label selector operator", c as char));
            }
            _ => {}
        }
        let op = self.word().to_string();
        let negate = match op.as_str() {
            "in" => false,
            "notin" => true,
            "" => return Err(format!("expected an operator after '{k}'")),
            other => return Err(format!("'{other}' is not a valid label selector operator")),
        };
        self.space();
        if self.peek() != Some(b'(') {
            return Err(format!("expected '(' after '{op}'"));
        }
        self.at += 1;
        let mut values = Vec::new();
        loop {
            self.space();
            if self.peek() == Some(b')') && values.is_empty() {
                self.at += 1;
                break;
            }
            values.push(value(self.word())?);
            self.space();
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b')') => {
                    self.at += 1;
                    break;
                }
                _ => return Err(format!("expected ',' or ')' in the values of '{k}'")),
            }
        }
        Ok(if negate { Requirement::NotIn(k, values) } else { Requirement::In(k, values) })
    }
}

/// A label key: an optional DNS subdomain prefix and a name.
fn key(k: &str) -> Result<String, String> {
    let (prefix, name) = match k.rsplit_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, k),
    };
    if let Some(p) = prefix {
        let ok = !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| super::object::is_label(l) && l.bytes().all(|b| !b.is_ascii_uppercase()));
        if !ok {
            return Err(format!("invalid label key '{k}': its prefix must be a lowercase DNS subdomain"));
        }
    }
    if name.is_empty() || !is_name(name) {
        return Err(format!("invalid label key '{k}'"));
    }
    Ok(k.to_string())
}

fn value(v: &str) -> Result<String, String> {
    if v.is_empty() || is_name(v) { Ok(v.to_string()) } else { Err(format!("invalid label value '{v}'")) }
}

/// A label name or value: 1-63 of alphanumerics, `-`, `_` and `.`, beginning and ending
/// alphanumeric.
fn is_name(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.len() <= 63
        && b.iter().all(|c| c.is_ascii_alphanumeric() || b"-_.".contains(c))
        && b[0].is_ascii_alphanumeric()
        && b[b.len() - 1].is_ascii_alphanumeric()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn selectors_as_kubectl_and_coredns_write_them() {
        let cases = [
            ("app=web", "app=web"),
            ("app == web", "app=web"),
            ("environment in (staging, qa),application=nginx", "environment in (staging,qa),application=nginx"),
            ("tier notin (frontend)", "tier notin (frontend)"),
            ("istio-injection", "istio-injection"),
            ("!canary", "!canary"),
            ("example.com/team!=ops", "example.com/team!=ops"),
            ("app=", "app="),
            ("a in ()", "a in ()"),
        ];
        for (text, want) in cases {
            assert_eq!(Selector::parse(text).map(|s| s.to_string()).as_deref(), Ok(want), "{text}");
        }
    }

    #[test]
    fn bad_selectors_say_why() {
        let cases = [
            ("", "invalid label key ''"),
            ("a b", "'b' is not a valid label selector operator"),
            ("a > 3", "'>' is not a valid label selector operator"),
            ("a in (x", "expected ',' or ')' in the values of 'a'"),
            ("a in x", "expected '(' after 'in'"),
            ("-a=b", "invalid label key '-a'"),
            ("a=-b", "invalid label value '-b'"),
            ("Ex.com/a=b", "invalid label key 'Ex.com/a': its prefix must be a lowercase DNS subdomain"),
            ("a=b;c", "unexpected ';' at offset 3"),
            ("a=b,", "invalid label key ''"),
        ];
        for (text, want) in cases {
            assert_eq!(Selector::parse(text), Err(want.to_string()), "{text}");
        }
    }
}
