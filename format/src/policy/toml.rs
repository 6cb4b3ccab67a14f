//! The part of TOML a policy file needs, read strictly: `[table]` and `[[array]]` headers
//! with bare names, `key = value` with bare keys, and values that are basic or literal
//! strings, integers, booleans, or arrays of those (across lines, with a trailing comma
//! and comments). Anything else (inline tables, dotted keys, dates, floats, multi-line
//! strings) is an error naming its line, never a guess. Kept small: this runs in the
//! static installer.

// `c` the cursor, `n` the line number, `r` the rest of the line, `v` a value.
#![allow(clippy::many_single_char_names)]

/// A parsed value.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
    Array(Vec<Value>),
}

/// `key = value` pairs of one table, in file order, with the line of each.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Table {
    pub line: usize,
    pub entries: Vec<(String, Value, usize)>,
}

/// The whole file: the top-level table, then each `[name]` or `[[name]]` table in order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Doc {
    pub root: Table,
    /// `(name, is_array_item, table)`.
    pub tables: Vec<(String, bool, Table)>,
}

#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
#[error("line {line}: {problem}")]
pub struct TomlError {
    pub line: usize,
    pub problem: String,
}

fn err<T>(line: usize, problem: impl Into<String>) -> Result<T, TomlError> {
    Err(TomlError {
        line,
        problem: problem.into(),
    })
}

fn bare(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

struct Cursor<'a> {
    lines: Vec<&'a str>,
    line: usize,
    col: usize,
}

impl<'a> Cursor<'a> {
    fn rest(&self) -> &'a str {
        match self.lines.get(self.line) {
            Some(l) => {
                let l: &'a str = l;
                &l[self.col..]
            }
            None => "",
        }
    }

    fn n(&self) -> usize {
        self.line + 1
    }

    /// Skips spaces and tabs, and a comment to the end of the line.
    fn skip_inline(&mut self) {
        let r = self.rest();
        let trimmed = r.trim_start_matches([' ', '\t']);
        self.col += r.len() - trimmed.len();
        if trimmed.starts_with('#') {
            self.col += trimmed.len();
        }
    }

    /// Skips blank space, comments and line ends (inside arrays).
    fn skip_all(&mut self) {
        loop {
            self.skip_inline();
            if self.rest().is_empty() && self.line + 1 < self.lines.len() {
                self.line += 1;
                self.col = 0;
            } else {
                return;
            }
        }
    }

    fn eat(&mut self, c: char) -> bool {
        if self.rest().starts_with(c) {
            self.col += c.len_utf8();
            true
        } else {
            false
        }
    }

    fn value(&mut self, depth: usize) -> Result<Value, TomlError> {
        let n = self.n();
        let r = self.rest();
        if r.starts_with("\"\"\"") || r.starts_with("'''") {
            return err(n, "multi-line strings are not supported in a policy file");
        }
        if self.eat('"') {
            let mut out = String::new();
            let mut chars = self.rest().char_indices();
            loop {
                let Some((i, c)) = chars.next() else {
                    return err(n, "unterminated string");
                };
                match c {
                    '"' => {
                        self.col += i + 1;
                        return Ok(Value::Str(out));
                    }
                    '\\' => {
                        let Some((_, e)) = chars.next() else {
                            return err(n, "unterminated string");
                        };
                        match e {
                            '"' => out.push('"'),
                            '\\' => out.push('\\'),
                            'n' => out.push('\n'),
                            't' => out.push('\t'),
                            'u' => {
                                let hex: String = (0..4)
                                    .filter_map(|_| chars.next().map(|(_, h)| h))
                                    .collect();
                                let ch = u32::from_str_radix(&hex, 16)
                                    .ok()
                                    .filter(|_| hex.len() == 4)
                                    .and_then(char::from_u32);
                                match ch {
                                    Some(ch) => out.push(ch),
                                    None => return err(n, "bad \\u escape"),
                                }
                            }
                            _ => return err(n, format!("unsupported escape \\{e}")),
                        }
                    }
                    c if c.is_control() && c != '\t' => {
                        return err(n, "control character in a string")
                    }
                    c => out.push(c),
                }
            }
        }
        if self.eat('\'') {
            let r = self.rest();
            let Some(end) = r.find('\'') else {
                return err(n, "unterminated string");
            };
            let s = r[..end].to_owned();
            if s.chars().any(|c| c.is_control() && c != '\t') {
                return err(n, "control character in a string");
            }
            self.col += end + 1;
            return Ok(Value::Str(s));
        }
        if self.eat('[') {
            if depth > 4 {
                return err(n, "arrays nested too deeply");
            }
            let mut items = Vec::new();
            loop {
                self.skip_all();
                if self.eat(']') {
                    return Ok(Value::Array(items));
                }
                if items.len() >= 4096 {
                    return err(self.n(), "array too long");
                }
                items.push(self.value(depth + 1)?);
                self.skip_all();
                if self.eat(',') {
                    continue;
                }
                self.skip_all();
                if self.eat(']') {
                    return Ok(Value::Array(items));
                }
                return err(self.n(), "expected , or ] in an array");
            }
        }
        if r.starts_with('{') {
            return err(n, "inline tables are not supported in a policy file");
        }
        let end = r
            .find(|c: char| c.is_whitespace() || matches!(c, ',' | ']' | '#'))
            .unwrap_or(r.len());
        let word = &r[..end];
        let v = match word {
            "true" => Value::Bool(true),
            "false" => Value::Bool(false),
            w if !w.is_empty()
                && w.trim_start_matches(['+', '-'])
                    .bytes()
                    .all(|b| b.is_ascii_digit() || b == b'_')
                && w.trim_start_matches(['+', '-'])
                    .starts_with(|c: char| c.is_ascii_digit()) =>
            {
                match w.replace('_', "").parse::<i64>() {
                    Ok(i) => Value::Int(i),
                    Err(_) => return err(n, format!("integer {w} out of range")),
                }
            }
            w => {
                return err(
                    n,
                    format!(
                        "unsupported value {w:?} (strings, integers, booleans and arrays only)"
                    ),
                )
            }
        };
        self.col += end;
        Ok(v)
    }
}

/// Parses a document.
pub fn parse(text: &str) -> Result<Doc, TomlError> {
    let mut doc = Doc::default();
    let mut c = Cursor {
        lines: text.lines().collect(),
        line: 0,
        col: 0,
    };
    let mut seen_tables: Vec<String> = Vec::new();
    while c.line < c.lines.len() {
        c.skip_inline();
        let n = c.n();
        let r = c.rest().trim_end();
        if r.is_empty() {
            c.line += 1;
            c.col = 0;
            continue;
        }
        if let Some(h) = r.strip_prefix("[[") {
            let name = h
                .strip_suffix("]]")
                .map(str::trim)
                .filter(|s| bare(s))
                .ok_or_else(|| TomlError {
                    line: n,
                    problem: format!("malformed table header {r:?}"),
                })?;
            if seen_tables.iter().any(|t| t == name) {
                return err(n, format!("[[{name}]] after [{name}]"));
            }
            doc.tables.push((
                name.to_owned(),
                true,
                Table {
                    line: n,
                    entries: Vec::new(),
                },
            ));
        } else if let Some(h) = r.strip_prefix('[') {
            let name = h
                .strip_suffix(']')
                .map(str::trim)
                .filter(|s| bare(s))
                .ok_or_else(|| TomlError {
                    line: n,
                    problem: format!(
                        "malformed table header {r:?} (dotted names are not supported)"
                    ),
                })?;
            if seen_tables.iter().any(|t| t == name) || doc.tables.iter().any(|(t, _, _)| t == name)
            {
                return err(n, format!("table [{name}] defined twice"));
            }
            seen_tables.push(name.to_owned());
            doc.tables.push((
                name.to_owned(),
                false,
                Table {
                    line: n,
                    entries: Vec::new(),
                },
            ));
        } else {
            let Some((key, _)) = r.split_once('=') else {
                return err(n, format!("expected key = value, found {r:?}"));
            };
            let key = key.trim();
            if !bare(key) {
                return err(
                    n,
                    format!("key {key:?} must be a bare key (letters, digits, _ and -)"),
                );
            }
            c.col += c.rest().find('=').expect("has =") + 1;
            c.skip_inline();
            let v = c.value(0)?;
            c.skip_inline();
            if !c.rest().trim().is_empty() {
                return err(
                    c.n(),
                    format!("unexpected text after the value: {:?}", c.rest().trim()),
                );
            }
            let table = match doc.tables.last_mut() {
                Some((_, _, t)) => t,
                None => &mut doc.root,
            };
            if table.entries.iter().any(|(k, _, _)| k == key) {
                return err(n, format!("key {key} defined twice"));
            }
            table.entries.push((key.to_owned(), v, n));
        }
        c.line += 1;
        c.col = 0;
    }
    Ok(doc)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_the_subset() {
        let d = parse(
            "# policy\ntop = 1\n[footprint]\ncapabilities = [\n  \"CAP_A\", # one\n  'CAP_B',\n]\nexec = false\n\n[[app]]\nname = \"x\\u0041\"\n[[app]]\nname = \"y\"\n",
        )
        .unwrap();
        assert_eq!(doc_get(&d.root, "top"), Some(&Value::Int(1)));
        assert_eq!(d.tables.len(), 3);
        assert_eq!(
            doc_get(&d.tables[0].2, "capabilities"),
            Some(&Value::Array(vec![
                Value::Str("CAP_A".into()),
                Value::Str("CAP_B".into())
            ]))
        );
        assert_eq!(
            doc_get(&d.tables[1].2, "name"),
            Some(&Value::Str("xA".into()))
        );
        assert!(d.tables[2].1);
    }

    fn doc_get<'a>(t: &'a Table, k: &str) -> Option<&'a Value> {
        t.entries
            .iter()
            .find(|(key, _, _)| key == k)
            .map(|(_, v, _)| v)
    }

    #[test]
    fn refuses_what_it_does_not_read() {
        for (bad, line) in [
            ("a = { b = 1 }", 1),
            ("a.b = 1", 1),
            ("a = 1.5", 1),
            ("a = 1979-05-27", 1),
            ("a = \"\"\"x\"\"\"", 1),
            ("a = 1\na = 2", 2),
            ("[t]\n[t]", 2),
            ("[a.b]", 1),
            ("a = \"unterminated", 1),
            ("a = [1, 2", 1),
            ("a = 1 b", 1),
            ("x", 1),
            ("a = \"\\q\"", 1),
        ] {
            let e = parse(bad).expect_err(bad);
            assert_eq!(e.line, line, "{bad}: {e}");
        }
    }
}
