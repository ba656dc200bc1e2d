//! Label and field selectors, parsed and matched as kube-apiserver does.
//!
//! Label selectors take the full set-based grammar: `key`, `!key`, `key=v`, `key==v`, `key!=v`,
//! `key in (a,b)`, `key notin (a,b)`, `key>n`, `key<n`, joined by commas. Field selectors take
//! `field=v`, `field==v` and `field!=v` terms, with `\` escaping `,`, `=` and `\` in values.

use crate::Kind;
use crate::object::Selectable;

/// A parsed `labelSelector`; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct LabelSelector(Vec<Requirement>);

#[derive(Clone, Debug, PartialEq)]
struct Requirement {
    key: String,
    op: Op,
}

#[derive(Clone, Debug, PartialEq)]
enum Op {
    Exists,
    DoesNotExist,
    In(Vec<String>),
    NotIn(Vec<String>),
    GreaterThan(i64),
    LessThan(i64),
}

/// A parsed `fieldSelector`; empty matches everything.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct FieldSelector(Vec<FieldTerm>);

#[derive(Clone, Debug, PartialEq)]
struct FieldTerm {
    field: String,
    value: String,
    equal: bool,
}

/// Both selectors of a request.
#[derive(Clone, Debug, Default, PartialEq)]
pub(crate) struct Selectors {
    pub labels: LabelSelector,
    pub fields: FieldSelector,
}

impl Selectors {
    /// Whether the selectors select everything, so objects need not be looked into.
    pub(crate) fn is_empty(&self) -> bool {
        self.labels.0.is_empty() && self.fields.0.is_empty()
    }

    /// Whether the stored object `json` is selected.
    pub(crate) fn matches(&self, json: &[u8]) -> bool {
        if self.is_empty() {
            return true;
        }
        let s = Selectable::parse(json);
        self.labels.matches(&s) && self.fields.matches(&s)
    }
}

#[derive(Clone, Debug, PartialEq)]
enum Token {
    Word(String),
    Not,
    Eq,
    NotEq,
    Gt,
    Lt,
    Open,
    Close,
    Comma,
}

fn tokenize(input: &str) -> Vec<Token> {
    let mut tokens = Vec::new();
    let mut chars = input.chars().peekable();
    while let Some(&c) = chars.peek() {
        let special = |c: char| c.is_whitespace() || ",()=!<>".contains(c);
        let token = match c {
            c if c.is_whitespace() => {
                chars.next();
                continue;
            }
            ',' => Token::Comma,
            '(' => Token::Open,
            ')' => Token::Close,
            '<' => Token::Lt,
            '>' => Token::Gt,
            '=' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                }
                tokens.push(Token::Eq);
                continue;
            }
            '!' => {
                chars.next();
                if chars.peek() == Some(&'=') {
                    chars.next();
                    tokens.push(Token::NotEq);
                } else {
                    tokens.push(Token::Not);
                }
                continue;
            }
            _ => {
                let mut word = String::new();
                while let Some(&c) = chars.peek().filter(|&&c| !special(c)) {
                    word.push(c);
                    chars.next();
                }
                tokens.push(Token::Word(word));
                continue;
            }
        };
        chars.next();
        tokens.push(token);
    }
    tokens
}

impl LabelSelector {
    /// Parses a `labelSelector` query parameter.
    pub(crate) fn parse(input: &str) -> Result<Self, String> {
        let tokens = tokenize(input);
        let mut requirements = Vec::new();
        let mut pos = 0;
        let next = |pos: &mut usize| {
            let t = tokens.get(*pos).cloned();
            *pos += 1;
            t
        };
        while pos < tokens.len() {
            let requirement = match next(&mut pos) {
                Some(Token::Not) => match next(&mut pos) {
                    Some(Token::Word(key)) => Requirement { key: validate_key(key)?, op: Op::DoesNotExist },
                    other => {
                        return Err(format!("unable to parse requirement: expected a key after '!', found {other:?}"));
                    }
                },
                Some(Token::Word(key)) => {
                    let key = validate_key(key)?;
                    let op = match tokens.get(pos) {
                        None | Some(Token::Comma) => Op::Exists,
                        Some(Token::Eq | Token::NotEq) => {
                            let equal = next(&mut pos) == Some(Token::Eq);
                            let value = match tokens.get(pos) {
                                Some(Token::Word(v)) => {
                                    pos += 1;
                                    validate_value(v.clone())?
                                }
                                None | Some(Token::Comma) => String::new(),
                                Some(other) => {
                                    return Err(format!(
                                        "unable to parse requirement: unexpected {other:?} after {key}"
                                    ));
                                }
                            };
                            if equal { Op::In(vec![value]) } else { Op::NotIn(vec![value]) }
                        }
                        Some(Token::Gt | Token::Lt) => {
                            let greater = next(&mut pos) == Some(Token::Gt);
                            let n = match next(&mut pos) {
                                Some(Token::Word(v)) => v.parse::<i64>().map_err(|_| {
                                    format!("unable to parse requirement: for 'Gt', 'Lt' operators, the value must be an integer, not {v:?}")
                                })?,
                                other => return Err(format!("unable to parse requirement: expected an integer, found {other:?}")),
                            };
                            if greater { Op::GreaterThan(n) } else { Op::LessThan(n) }
                        }
                        Some(Token::Word(w)) if w == "in" || w == "notin" => {
                            let is_in = w == "in";
                            pos += 1;
                            let values = parse_set(&tokens, &mut pos)?;
                            if is_in { Op::In(values) } else { Op::NotIn(values) }
                        }
                        Some(other) => {
                            return Err(format!("unable to parse requirement: unexpected {other:?} after {key}"));
                        }
                    };
                    Requirement { key, op }
                }
                other => {
                    return Err(format!("unable to parse requirement: expected a key, found {other:?}"));
                }
            };
            requirements.push(requirement);
            match next(&mut pos) {
                None => break,
                Some(Token::Comma) if pos < tokens.len() => {}
                other => {
                    return Err(format!("found {other:?}, expected ',' between requirements of {input:?}"));
                }
            }
        }
        Ok(LabelSelector(requirements))
    }

    fn matches(&self, object: &Selectable<'_>) -> bool {
        self.0.iter().all(|r| {
            let value = object.label(&r.key);
            match &r.op {
                Op::Exists => value.is_some(),
                Op::DoesNotExist => value.is_none(),
                Op::In(values) => value.is_some_and(|v| values.iter().any(|x| x == v)),
                Op::NotIn(values) => value.is_none_or(|v| values.iter().all(|x| x != v)),
                Op::GreaterThan(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v > *n),
                Op::LessThan(n) => value.and_then(|v| v.parse::<i64>().ok()).is_some_and(|v| v < *n),
            }
        })
    }
}

fn parse_set(tokens: &[Token], pos: &mut usize) -> Result<Vec<String>, String> {
    if tokens.get(*pos) != Some(&Token::Open) {
        return Err("unable to parse requirement: expected '(' after in/notin".into());
    }
    *pos += 1;
    let mut values = Vec::new();
    loop {
        match tokens.get(*pos) {
            Some(Token::Word(v)) => {
                values.push(validate_value(v.clone())?);
                *pos += 1;
            }
            // An empty value between commas, as in `in (a,,b)` or `in (a,)`.
            Some(Token::Comma | Token::Close) => values.push(String::new()),
            other => {
                return Err(format!("unable to parse requirement: unexpected {other:?} in a value set"));
            }
        }
        match tokens.get(*pos) {
            Some(Token::Comma) => *pos += 1,
            Some(Token::Close) => {
                *pos += 1;
                return Ok(values);
            }
            other => {
                return Err(format!(
                    "unable to parse requirement: expected ',' or ')' in a value set, found {other:?}"
                ));
            }
        }
    }
}

/// A label name: an optional DNS-subdomain prefix and `/`, then 1-63 alphanumerics, `-`, `_`, `.`
/// that begin and end alphanumeric.
fn validate_key(key: String) -> Result<String, String> {
    let (prefix, name) = match key.split_once('/') {
        Some((prefix, name)) => (Some(prefix), name),
        None => (None, key.as_str()),
    };
    let prefix_ok = prefix.is_none_or(|p| {
        !p.is_empty()
            && p.len() <= 253
            && p.split('.').all(|l| {
                !l.is_empty()
                    && l.len() <= 63
                    && l.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            })
    });
    if prefix_ok && !name.is_empty() && is_label_value(name) {
        Ok(key)
    } else {
        Err(format!(
            "unable to parse requirement: invalid label key {key:?}: name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn validate_value(value: String) -> Result<String, String> {
    if is_label_value(&value) {
        Ok(value)
    } else {
        Err(format!(
            "unable to parse requirement: invalid label value {value:?}: a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character"
        ))
    }
}

fn is_label_value(v: &str) -> bool {
    let b = v.as_bytes();
    v.is_empty()
        || (b.len() <= 63
            && b[0].is_ascii_alphanumeric()
            && b[b.len() - 1].is_ascii_alphanumeric()
            && b.iter().all(|&c| c.is_ascii_alphanumeric() || b"-_.".contains(&c)))
}

impl FieldSelector {
    /// Parses a `fieldSelector` query parameter and checks its fields against what `kind` supports.
    pub(crate) fn parse(input: &str, kind: Kind) -> Result<Self, String> {
        let mut terms = Vec::new();
        for term in split_unescaped(input, ',') {
            if term.is_empty() {
                continue;
            }
            let (field, value, equal) = if let Some((f, v)) = split_operator(&term, "!=") {
                (f, v, false)
            } else if let Some((f, v)) = split_operator(&term, "==").or_else(|| split_operator(&term, "=")) {
                (f, v, true)
            } else {
                return Err(format!("invalid selector: '{input}'; can't understand '{term}'"));
            };
            let field = field.trim().to_owned();
            if !kind.supports_field(&field) {
                return Err(format!("field label not supported: {field}"));
            }
            terms.push(FieldTerm { field, value: unescape(&value)?, equal });
        }
        Ok(FieldSelector(terms))
    }

    fn matches(&self, object: &Selectable<'_>) -> bool {
        self.0.iter().all(|t| (object.field(&t.field) == t.value.as_str()) == t.equal)
    }
}

/// Splits at `sep` where it is not escaped by a backslash, keeping the escapes.
fn split_unescaped(input: &str, sep: char) -> Vec<String> {
    let mut parts = vec![String::new()];
    let mut escaped = false;
    for c in input.chars() {
        if c == sep && !escaped {
            parts.push(String::new());
            continue;
        }
        escaped = c == '\\' && !escaped;
        parts.last_mut().expect("starts non-empty").push(c);
    }
    parts
}

/// Splits `term` at the first unescaped `op`.
fn split_operator(term: &str, op: &str) -> Option<(String, String)> {
    let mut escaped = false;
    for (i, c) in term.char_indices() {
        if !escaped && term[i..].starts_with(op) {
            return Some((term[..i].to_owned(), term[i + op.len()..].to_owned()));
        }
        escaped = c == '\\' && !escaped;
    }
    None
}

fn unescape(value: &str) -> Result<String, String> {
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some(e @ ('\\' | ',' | '=')) => out.push(e),
            other => {
                return Err(format!(
                    "invalid field selector value {value:?}: invalid escape sequence '\\{}'",
                    other.map(String::from).unwrap_or_default()
                ));
            }
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(labels: &str, node: &str) -> Vec<u8> {
        format!(r#"{{"kind":"Pod","metadata":{{"name":"p","namespace":"ns","labels":{{{labels}}}}},"spec":{{"nodeName":"{node}"}},"status":{{"phase":"Running"}}}}"#)
            .into_bytes()
    }

    fn selects(labels: &str, fields: &str, object: &[u8]) -> bool {
        let sel = Selectors {
            labels: LabelSelector::parse(labels).unwrap(),
            fields: FieldSelector::parse(fields, Kind::Pod).unwrap(),
        };
        sel.matches(object)
    }

    #[test]
    fn label_operators() {
        let web = pod(r#""app":"web","tier":"front","rank":"5""#, "n1");
        let bare = pod("", "n1");
        for (selector, on_web, on_bare) in [
            ("", true, true),
            ("app", true, false),
            ("!app", false, true),
            ("app=web", true, false),
            ("app==web", true, false),
            ("app=db", false, false),
            ("app!=db", true, true),
            ("app!=web", false, true),
            ("app in (db, web)", true, false),
            ("app in (db)", false, false),
            ("app notin (db,web)", false, true),
            ("app notin (db)", true, true),
            ("app=web,tier=front", true, false),
            ("app=web,tier=back", false, false),
            ("app=web, !missing", true, false),
            ("rank>4", true, false),
            ("rank<5", false, false),
            ("example.com/role", false, false),
        ] {
            assert_eq!(selects(selector, "", &web), on_web, "{selector:?} on web");
            assert_eq!(selects(selector, "", &bare), on_bare, "{selector:?} on bare");
        }
    }

    #[test]
    fn label_syntax_errors() {
        // An empty value is legal: it selects objects whose label is empty.
        assert!(LabelSelector::parse("app=").is_ok());
        for bad in [
            "=web",
            "app in web",
            "app in (a",
            "app,",
            "app=web app=db",
            "-app",
            "app=we b",
            "a/b/c",
            "rank>x",
            "app in (a b)",
        ] {
            assert!(LabelSelector::parse(bad).is_err(), "{bad:?} should not parse");
        }
    }

    #[test]
    fn fields() {
        let p = pod(r#""app":"web""#, "node-1");
        assert!(selects("", "spec.nodeName=node-1", &p));
        assert!(selects("", "spec.nodeName==node-1,status.phase=Running", &p));
        assert!(!selects("", "spec.nodeName!=node-1", &p));
        assert!(selects("", "metadata.name=p,metadata.namespace=ns", &p));
        assert!(selects("", "status.podIP=", &p), "an absent field is the empty string");
        assert!(selects("app=web", "spec.nodeName=node-1", &p));
        assert!(!selects("app=db", "spec.nodeName=node-1", &p));
    }

    #[test]
    fn field_errors_and_escapes() {
        assert_eq!(
            FieldSelector::parse("spec.nodeName", Kind::Pod).unwrap_err(),
            "invalid selector: 'spec.nodeName'; can't understand 'spec.nodeName'"
        );
        assert_eq!(
            FieldSelector::parse("spec.type=ClusterIP", Kind::Pod).unwrap_err(),
            "field label not supported: spec.type"
        );
        assert!(FieldSelector::parse("spec.type=ClusterIP", Kind::Service).is_ok());
        let sel = FieldSelector::parse(r"metadata.name=a\,b\=c\\d,spec.nodeName!=x", Kind::Pod).unwrap();
        assert_eq!(sel.0[0].value, r"a,b=c\d");
        assert!(!sel.0[1].equal);
        assert!(FieldSelector::parse(r"metadata.name=a\x", Kind::Pod).is_err());
    }
}
