//! The Prometheus web configuration file that `tls CONFIG_FILE` names: the YAML format of
//! Prometheus's exporter-toolkit, of which clusterdns implements the `tls_server_config` keys
//! CoreDNS documents.
//!
//! ~~~ txt
//! tls_server_config:
//!   cert_file: server.crt                       required; PEM, the chain after the certificate
//!   key_file: server.key                        required; PEM
//!   client_auth_type: RequireAndVerifyClientCert    default NoClientCert
//!   client_ca_file: ca.crt                      the CAs client certificates must chain to
//! ~~~
//!
//! Relative paths are taken from the directory of the file, as exporter-toolkit does
//! (`SetDirectory`). Every other key of the format is an error naming it, with the reason it is
//! not implemented: a file that asks for basic authentication, a TLS version or an allow-list
//! of client names and gets less would be worse than one that does not load. exporter-toolkit
//! rejects unknown keys too (it reads the file with `UnmarshalStrict`).
//!
//! # The YAML read
//!
//! The file is read by a strict reader of the small part of YAML such files use, rather than a
//! YAML library: the format is two levels of `key: value`, and a library would bring a dozen
//! crates into the server for it. What it reads: a block mapping at column 1 whose values are
//! scalars or, for `tls_server_config`, a block mapping indented by any number of spaces; plain,
//! single-quoted and double-quoted scalars (all of YAML 1.2's escapes), `~`/`null`/empty as
//! null; comments; a leading `---`, a trailing `...`, CRLF line ends and a byte-order mark.
//! Anything else YAML allows (flow `{...}` and `[...]` collections, lists, anchors, aliases,
//! tags, block scalars `|` `>`, values continued on the next line, a second document) is an
//! error at its position, never a guess.

use std::path::{Path, PathBuf};

use crate::http::tls::{ClientAuth, TlsSettings};

/// An error in the file, at a line and column (1-based) when there is one to blame.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{}{}: {message}", file.display(), at.map(|(l, c)| format!(":{l}:{c}")).unwrap_or_default())]
pub struct WebConfigError {
    file: PathBuf,
    at: Option<(usize, usize)>,
    message: String,
}

/// The TLS settings of the web configuration file `path`, whose text is `text`.
pub fn parse(path: &Path, text: &str) -> Result<TlsSettings, WebConfigError> {
    Reader { file: path }.read(text)
}

/// A scalar and where it starts.
struct Scalar {
    /// `None` for null (`~`, `null`, nothing).
    value: Option<String>,
    line: usize,
    col: usize,
}

/// One `key: value` line, its value not read yet: a key this reader rejects is reported as
/// such, whatever YAML its value uses.
struct Entry<'a> {
    key: String,
    /// The text after `key:` and the spaces after it, and the column where it starts.
    value: &'a str,
    value_col: usize,
}

/// The keys of `tls_server_config` as read, before checking.
#[derive(Default)]
struct Tls {
    cert_file: Option<Scalar>,
    key_file: Option<Scalar>,
    client_auth_type: Option<Scalar>,
    client_ca_file: Option<Scalar>,
}

struct Reader<'a> {
    file: &'a Path,
}

impl Reader<'_> {
    fn error(&self, line: usize, col: usize, message: impl Into<String>) -> WebConfigError {
        WebConfigError { file: self.file.to_path_buf(), at: Some((line, col)), message: message.into() }
    }

    fn read(&self, text: &str) -> Result<TlsSettings, WebConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        // (the line of the `tls_server_config` key, its keys so far, their indentation)
        let mut tls: Option<(usize, Tls, Option<usize>)> = None;
        // The last top-level key: what an indented line belongs to.
        let mut section: Option<String> = None;
        let mut seen: Vec<String> = Vec::new();
        let mut started = false;
        let mut ended = false;
        for (i, raw) in text.lines().enumerate() {
            let n = i + 1;
            let content = raw.trim_start_matches(' ');
            let indent = raw.len() - content.len();
            if content.starts_with('\t') {
                return Err(self.error(n, indent + 1, "a tab in the indentation: YAML indents with spaces only"));
            }
            if content.trim().is_empty() || content.starts_with('#') {
                continue;
            }
            if indent == 0 && is_marker(content, "---") {
                if started || ended {
                    return Err(self.error(n, 1, "a second YAML document: the file must hold one"));
                }
                started = true;
                continue;
            }
            if indent == 0 && is_marker(content, "...") {
                ended = true;
                continue;
            }
            if ended {
                return Err(self.error(n, 1, "text after the end of the document ('...')"));
            }
            started = true;

            if indent == 0 {
                let entry = self.entry(n, indent, content)?;
                let key = entry.key.clone();
                if seen.contains(&key) {
                    return Err(self.error(n, 1, format!("{key} is given twice")));
                }
                seen.push(key.clone());
                match key.as_str() {
                    "tls_server_config" => {
                        if self.scalar(n, &entry)?.value.is_some() {
                            return Err(self.error(
                                n,
                                entry.value_col,
                                "tls_server_config: expected its keys on the lines below, indented",
                            ));
                        }
                        tls = Some((n, Tls::default(), None));
                    }
                    "http_server_config" => {
                        return Err(self.error(
                            n,
                            1,
                            "http_server_config is not implemented: metrics are served over HTTP/1.1, \
                             without extra headers",
                        ));
                    }
                    "basic_auth_users" => {
                        return Err(self.error(
                            n,
                            1,
                            "basic_auth_users is not implemented: clusterdns checks no passwords; \
                             require client certificates (client_auth_type) to limit who scrapes",
                        ));
                    }
                    "rate_limit" => return Err(self.error(n, 1, "rate_limit is not implemented")),
                    _ => return Err(self.error(n, 1, format!("unknown key '{key}'"))),
                }
                section = Some(key);
                continue;
            }

            // An indented line: a key of tls_server_config, the only section with keys.
            let Some((_, keys, child_indent)) =
                tls.as_mut().filter(|_| section.as_deref() == Some("tls_server_config"))
            else {
                return Err(self.error(n, indent + 1, "unexpected indentation"));
            };
            if *child_indent.get_or_insert(indent) != indent {
                return Err(self.error(
                    n,
                    indent + 1,
                    "unexpected indentation: the keys of tls_server_config must line up, and a value \
                     must be on one line (quoted if need be)",
                ));
            }
            let entry = self.entry(n, indent, content)?;
            let key = entry.key.clone();
            let slot = match key.as_str() {
                "cert_file" => &mut keys.cert_file,
                "key_file" => &mut keys.key_file,
                "client_auth_type" => &mut keys.client_auth_type,
                "client_ca_file" => &mut keys.client_ca_file,
                "cert" | "key" | "client_ca" => {
                    return Err(self.error(
                        n,
                        indent + 1,
                        format!(
                            "tls_server_config: {key} (inline PEM) is not implemented: name a file with {key}_file"
                        ),
                    ));
                }
                "min_version"
                | "max_version"
                | "cipher_suites"
                | "curve_preferences"
                | "prefer_server_cipher_suites" => {
                    return Err(self.error(
                        n,
                        indent + 1,
                        format!(
                            "tls_server_config: {key} is not implemented: clusterdns serves TLS 1.2 and 1.3 \
                             with rustls's default cipher suites and key exchanges"
                        ),
                    ));
                }
                "client_allowed_sans" => {
                    return Err(self.error(
                        n,
                        indent + 1,
                        "tls_server_config: client_allowed_sans is not implemented: every certificate the \
                         client CA signed would be let in",
                    ));
                }
                _ => return Err(self.error(n, indent + 1, format!("tls_server_config: unknown key '{key}'"))),
            };
            if slot.is_some() {
                return Err(self.error(n, indent + 1, format!("tls_server_config: {key} is given twice")));
            }
            *slot = Some(self.scalar(n, &entry)?);
        }

        let Some((line, keys, _)) = tls else {
            return Err(WebConfigError {
                file: self.file.to_path_buf(),
                at: None,
                message: "no tls_server_config: tls needs a certificate (cert_file) and its key (key_file)".into(),
            });
        };
        self.settings(line, keys)
    }

    /// Checks the keys read under `tls_server_config` (at `line`) and resolves their paths.
    fn settings(&self, line: usize, keys: Tls) -> Result<TlsSettings, WebConfigError> {
        let dir = self.file.parent().unwrap_or(Path::new(""));
        let path = |s: &Option<Scalar>| -> Option<PathBuf> {
            let value = s.as_ref()?.value.as_deref().filter(|v| !v.is_empty())?;
            // exporter-toolkit's rule (prometheus/common's JoinDir): relative to the file.
            Some(dir.join(value))
        };
        let required = |name: &str, s: &Option<Scalar>| {
            path(s).ok_or_else(|| self.error(line, 1, format!("tls_server_config: {name} is missing")))
        };
        let cert_file = required("cert_file", &keys.cert_file)?;
        let key_file = required("key_file", &keys.key_file)?;
        let client_auth = match &keys.client_auth_type {
            Some(Scalar { value: Some(v), line, col }) if !v.is_empty() => {
                // "RequireClientCert" is exporter-toolkit's older name for RequireAnyClientCert.
                let name = if v == "RequireClientCert" { "RequireAnyClientCert" } else { v.as_str() };
                let found = ClientAuth::ALL.iter().find(|(n, _)| *n == name);
                let Some((_, auth)) = found else {
                    let names: Vec<&str> = ClientAuth::ALL.iter().map(|(n, _)| *n).collect();
                    return Err(self.error(
                        *line,
                        *col,
                        format!(
                            "tls_server_config: unknown client_auth_type '{v}': expected {} or {}",
                            names[..names.len() - 1].join(", "),
                            names[names.len() - 1]
                        ),
                    ));
                };
                *auth
            }
            _ => ClientAuth::NoClientCert,
        };
        Ok(TlsSettings { cert_file, key_file, client_auth, client_ca_file: path(&keys.client_ca_file) })
    }

    /// Reads `key: value` (value possibly empty) from `content`, which starts at column
    /// `indent + 1` of line `n`.
    fn entry<'t>(&self, n: usize, indent: usize, content: &'t str) -> Result<Entry<'t>, WebConfigError> {
        let col0 = indent + 1;
        self.reject_indicator(n, col0, content, "a key")?;
        let (key, after_key) = if content.starts_with(['"', '\'']) {
            let (value, len) = self.quoted(n, col0, content)?;
            (value, &content[len..])
        } else {
            let end = find_colon(content).ok_or_else(|| self.error(n, col0, "expected 'key: value'"))?;
            (content[..end].trim_end().to_string(), &content[end..])
        };
        let Some(rest) = after_key.strip_prefix(':') else {
            let col = col0 + width(&content[..content.len() - after_key.len()]);
            return Err(self.error(n, col, "expected ':' after the key"));
        };
        if !(rest.is_empty() || rest.starts_with([' ', '\t'])) {
            let col = col0 + width(&content[..content.len() - rest.len()]);
            return Err(self.error(n, col, "expected a space after ':'"));
        }
        let value = rest.trim_start_matches([' ', '\t']);
        Ok(Entry { key, value, value_col: col0 + width(&content[..content.len() - value.len()]) })
    }

    /// The value of `entry`, on line `n`.
    fn scalar(&self, n: usize, entry: &Entry<'_>) -> Result<Scalar, WebConfigError> {
        let value = self.value(n, entry.value_col, entry.value)?;
        Ok(Scalar { value, line: n, col: entry.value_col })
    }

    /// The scalar `text` (the rest of a line after `key:`), starting at column `col`.
    fn value(&self, n: usize, col: usize, text: &str) -> Result<Option<String>, WebConfigError> {
        if text.is_empty() || text.starts_with('#') {
            return Ok(None);
        }
        self.reject_indicator(n, col, text, "a value")?;
        if text.starts_with(['"', '\'']) {
            let (value, len) = self.quoted(n, col, text)?;
            let after = &text[len..];
            let trailing = after.trim_start_matches([' ', '\t']);
            let comment = trailing.starts_with('#') && trailing.len() < after.len();
            if !(trailing.is_empty() || comment) {
                return Err(self.error(n, col + width(&text[..len]), "unexpected text after the quoted value"));
            }
            return Ok(Some(value));
        }
        // A plain scalar ends at a comment (a '#' after a space) or the end of the line.
        let end = comment_start(text).unwrap_or(text.len());
        let value = text[..end].trim_end();
        if let Some(i) = find_colon(value) {
            return Err(self.error(n, col + width(&value[..i]), "a value with ': ' in it must be quoted"));
        }
        Ok(match value {
            "~" | "null" | "Null" | "NULL" => None,
            v => Some(v.to_string()),
        })
    }

    /// Errors if `text` starts with a YAML indicator this reader does not take.
    fn reject_indicator(&self, n: usize, col: usize, text: &str, what: &str) -> Result<(), WebConfigError> {
        let starts = |p: &str| text == p || text.starts_with(&format!("{p} ")) || text.starts_with(&format!("{p}\t"));
        let why = match text.chars().next() {
            Some('{' | '[') => "flow collections ({...}, [...]) are not read: write one key per line",
            Some('&' | '*') => "anchors and aliases are not read",
            Some('!') => "tags are not read",
            Some('|' | '>') => "block scalars (| and >) are not read: write the value on one line",
            Some('%') => "YAML directives are not read",
            Some('@' | '`') => "'@' and '`' cannot start a plain scalar",
            Some(',' | ']' | '}') => "unexpected flow indicator",
            _ if starts("-") => "lists are not read here",
            _ if starts("?") => "complex keys are not read",
            _ => return Ok(()),
        };
        Err(self.error(n, col, format!("{what}: {why}")))
    }

    /// A quoted scalar at the start of `text`: its value and the length of its text, quotes
    /// included. It must end on its line.
    fn quoted(&self, n: usize, col: usize, text: &str) -> Result<(String, usize), WebConfigError> {
        let quote = text.chars().next().expect("starts with a quote");
        let mut out = String::new();
        let mut chars = text.char_indices().skip(1).peekable();
        while let Some((i, c)) = chars.next() {
            match c {
                '\'' if quote == '\'' => {
                    if let Some((_, '\'')) = chars.peek() {
                        chars.next();
                        out.push('\'');
                    } else {
                        return Ok((out, i + 1));
                    }
                }
                '"' if quote == '"' => return Ok((out, i + 1)),
                '\\' if quote == '"' => {
                    let Some((j, e)) = chars.next() else { break };
                    let decoded = match e {
                        '0' => Some('\0'),
                        'a' => Some('\x07'),
                        'b' => Some('\x08'),
                        't' | '\t' => Some('\t'),
                        'n' => Some('\n'),
                        'v' => Some('\x0b'),
                        'f' => Some('\x0c'),
                        'r' => Some('\r'),
                        'e' => Some('\x1b'),
                        ' ' => Some(' '),
                        '"' => Some('"'),
                        '/' => Some('/'),
                        '\\' => Some('\\'),
                        'N' => Some('\u{85}'),
                        '_' => Some('\u{a0}'),
                        'L' => Some('\u{2028}'),
                        'P' => Some('\u{2029}'),
                        'x' => hex(2, &mut chars),
                        'u' => hex(4, &mut chars),
                        'U' => hex(8, &mut chars),
                        _ => None,
                    };
                    let Some(d) = decoded else {
                        let at = col + width(&text[..j]) - 1;
                        return Err(self.error(n, at, "invalid escape in a double-quoted value"));
                    };
                    out.push(d);
                }
                c => out.push(c),
            }
        }
        Err(self.error(n, col, "a quoted value must end on its line"))
    }
}

/// The character of the next `len` hex digits of `chars` (`\x`, `\u`, `\U` escapes).
fn hex(len: usize, chars: &mut impl Iterator<Item = (usize, char)>) -> Option<char> {
    let digits: String = chars.take(len).map(|(_, c)| c).collect();
    let code = u32::from_str_radix(&digits, 16).ok().filter(|_| digits.len() == len)?;
    char::from_u32(code)
}

/// Columns count characters, as in Corefile errors.
fn width(s: &str) -> usize {
    s.chars().count()
}

/// True when `content` is the marker `---` or `...`, alone or before a space.
fn is_marker(content: &str, marker: &str) -> bool {
    content == marker || content.starts_with(&format!("{marker} ")) || content.starts_with(&format!("{marker}\t"))
}

/// Where the first ':' that ends a plain key is: one followed by a space or the end.
fn find_colon(text: &str) -> Option<usize> {
    let cut = comment_start(text).unwrap_or(text.len());
    let text = &text[..cut];
    text.char_indices()
        .find(|&(i, c)| c == ':' && text[i + 1..].chars().next().is_none_or(|n| n == ' ' || n == '\t'))
        .map(|(i, _)| i)
}

/// Where a comment starts in a plain scalar's line: a '#' after a space or tab.
fn comment_start(text: &str) -> Option<usize> {
    text.char_indices().find(|&(i, c)| c == '#' && i > 0 && text[..i].ends_with([' ', '\t'])).map(|(i, _)| i)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn settings(text: &str) -> Result<TlsSettings, String> {
        parse(Path::new("/etc/coredns/web.yml"), text).map_err(|e| e.to_string())
    }

    fn want(cert: &str, key: &str, auth: ClientAuth, ca: Option<&str>) -> TlsSettings {
        TlsSettings {
            cert_file: cert.into(),
            key_file: key.into(),
            client_auth: auth,
            client_ca_file: ca.map(PathBuf::from),
        }
    }

    #[test]
    fn the_coredns_readme_example() {
        let got = settings("tls_server_config:\n  cert_file: server.crt\n  key_file: server.key\n").unwrap();
        assert_eq!(got, want("/etc/coredns/server.crt", "/etc/coredns/server.key", ClientAuth::NoClientCert, None));
    }

    /// Relative paths are taken from the file's directory; absolute ones are kept.
    #[test]
    fn mutual_tls_with_every_scalar_style() {
        let text = "\u{feff}--- # web config\r\n\
            # comment\r\n\
            tls_server_config:   # the only section\r\n\
            \x20   cert_file: \"/srv/tls/server.crt\"\r\n\
            \r\n\
            \x20   key_file: 'keys/it''s.key'  # quoted\r\n\
            \x20   client_auth_type: RequireAndVerifyClientCert\r\n\
            \x20   client_ca_file: ca dir/ca#1.pem # spaces and a '#' inside\r\n\
            ...\r\n\
            # the end\r\n";
        let got = settings(text).unwrap();
        assert_eq!(
            got,
            want(
                "/srv/tls/server.crt",
                "/etc/coredns/keys/it's.key",
                ClientAuth::RequireAndVerifyClientCert,
                Some("/etc/coredns/ca dir/ca#1.pem")
            )
        );
        let got = settings("tls_server_config:\n cert_file: \"a\\x41\\u00e9\\t\\\\\\\"b\"\n key_file: k\n").unwrap();
        assert_eq!(got.cert_file, PathBuf::from("/etc/coredns/aAé\t\\\"b"));
    }

    #[test]
    fn client_auth_types_by_their_go_names() {
        for (name, auth) in
            ClientAuth::ALL.iter().copied().chain([("RequireClientCert", ClientAuth::RequireAnyClientCert)])
        {
            let text = format!("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: {name}\n");
            assert_eq!(settings(&text).unwrap().client_auth, auth, "{name}");
        }
        for empty in ["", "~", "null", "\"\""] {
            let text = format!("tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: {empty}\n");
            assert_eq!(settings(&text).unwrap().client_auth, ClientAuth::NoClientCert, "{empty}");
        }
    }

    /// Every error names the file, line and column, and what is wrong.
    #[test]
    fn errors_name_the_file_and_key() {
        let f = "/etc/coredns/web.yml";
        let cases = [
            ("", format!("{f}: no tls_server_config: tls needs a certificate (cert_file) and its key (key_file)")),
            ("tls_server_config: ~\n", format!("{f}:1:1: tls_server_config: cert_file is missing")),
            ("tls_server_config:\n  key_file: k\n", format!("{f}:1:1: tls_server_config: cert_file is missing")),
            (
                "tls_server_config:\n  cert_file: ''\n  key_file: k\n",
                format!("{f}:1:1: tls_server_config: cert_file is missing"),
            ),
            ("tls_server_config:\n  cert_file: c\n", format!("{f}:1:1: tls_server_config: key_file is missing")),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  min_version: TLS13\n",
                format!(
                    "{f}:4:3: tls_server_config: min_version is not implemented: clusterdns serves TLS 1.2 and 1.3 with rustls's default cipher suites and key exchanges"
                ),
            ),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  cipher_suites:\n    - TLS_AES_128_GCM_SHA256\n",
                format!(
                    "{f}:4:3: tls_server_config: cipher_suites is not implemented: clusterdns serves TLS 1.2 and 1.3 with rustls's default cipher suites and key exchanges"
                ),
            ),
            (
                "tls_server_config:\n  cert: |\n    PEM\n",
                format!("{f}:2:3: tls_server_config: cert (inline PEM) is not implemented: name a file with cert_file"),
            ),
            (
                "tls_server_config:\n  client_allowed_sans: [a]\n",
                format!(
                    "{f}:2:3: tls_server_config: client_allowed_sans is not implemented: every certificate the client CA signed would be let in"
                ),
            ),
            ("tls_server_config:\n  certfile: c\n", format!("{f}:2:3: tls_server_config: unknown key 'certfile'")),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\nbasic_auth_users:\n  alice: $2y$10$x\n",
                format!(
                    "{f}:4:1: basic_auth_users is not implemented: clusterdns checks no passwords; require client certificates (client_auth_type) to limit who scrapes"
                ),
            ),
            (
                "http_server_config:\n  http2: false\n",
                format!(
                    "{f}:1:1: http_server_config is not implemented: metrics are served over HTTP/1.1, without extra headers"
                ),
            ),
            ("rate_limit:\n  burst: 10\n", format!("{f}:1:1: rate_limit is not implemented")),
            ("tls_config:\n  cert_file: c\n", format!("{f}:1:1: unknown key 'tls_config'")),
            (
                "tls_server_config:\n  cert_file: c\n  key_file: k\n  client_auth_type: RequireAndVerify\n",
                format!(
                    "{f}:4:21: tls_server_config: unknown client_auth_type 'RequireAndVerify': expected NoClientCert, RequestClientCert, RequireAnyClientCert, VerifyClientCertIfGiven or RequireAndVerifyClientCert"
                ),
            ),
            (
                "tls_server_config:\n  cert_file: c\n  cert_file: d\n",
                format!("{f}:3:3: tls_server_config: cert_file is given twice"),
            ),
            ("tls_server_config:\ntls_server_config:\n", format!("{f}:2:1: tls_server_config is given twice")),
            // YAML this reader does not take.
            (
                "tls_server_config: {cert_file: c, key_file: k}\n",
                format!("{f}:1:20: a value: flow collections ({{...}}, [...]) are not read: write one key per line"),
            ),
            ("tls_server_config: &tls\n", format!("{f}:1:20: a value: anchors and aliases are not read")),
            (
                "tls_server_config:\n  cert_file: >\n    c\n",
                format!("{f}:2:14: a value: block scalars (| and >) are not read: write the value on one line"),
            ),
            (
                "tls_server_config:\n  cert_file: a\n    b\n  key_file: k\n",
                format!(
                    "{f}:3:5: unexpected indentation: the keys of tls_server_config must line up, and a value must be on one line (quoted if need be)"
                ),
            ),
            (
                "tls_server_config:\n\tcert_file: c\n",
                format!("{f}:2:1: a tab in the indentation: YAML indents with spaces only"),
            ),
            ("  tls_server_config:\n", format!("{f}:1:3: unexpected indentation")),
            (
                "tls_server_config: yes\n",
                format!("{f}:1:20: tls_server_config: expected its keys on the lines below, indented"),
            ),
            ("tls_server_config:\n  cert_file: \"c\n", format!("{f}:2:14: a quoted value must end on its line")),
            (
                "tls_server_config:\n  cert_file: \"c\\q\"\n",
                format!("{f}:2:16: invalid escape in a double-quoted value"),
            ),
            ("tls_server_config:\n  cert_file: 'c' d\n", format!("{f}:2:17: unexpected text after the quoted value")),
            ("tls_server_config:\n  cert_file: 'é' d\n", format!("{f}:2:17: unexpected text after the quoted value")),
            ("tls_server_config:\n  cert_file: a: b\n", format!("{f}:2:15: a value with ': ' in it must be quoted")),
            ("tls_server_config:\n  cert_file:c\n", format!("{f}:2:3: expected 'key: value'")),
            ("tls_server_config:\n  - cert_file: c\n", format!("{f}:2:3: a key: lists are not read here")),
            ("tls_server_config:\n---\n", format!("{f}:2:1: a second YAML document: the file must hold one")),
            ("tls_server_config:\n...\nrate_limit:\n", format!("{f}:3:1: text after the end of the document ('...')")),
            ("tls_server_config:\n  ~: c\n", format!("{f}:2:3: tls_server_config: unknown key '~'")),
        ];
        for (text, want) in cases {
            assert_eq!(settings(text).unwrap_err(), want, "{text:?}");
        }
    }
}
