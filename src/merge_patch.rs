//! JSON merge patch (RFC 7396) on the stored text, keeping its bytes: members the patch does not
//! name stay exactly as they were written (the text is never parsed into numbers and printed
//! again, which would change `1e+21` into `1e21`), existing keys keep their place, new keys go at
//! the end, and what the patch brings is written as JS wrote it in the patch. So the merged text is
//! what `JSON.stringify` gives for the merged object, and the anchors keep reading it.

use crate::error::{BackendError, BackendResult};

/// Nesting deeper than this is refused rather than recursed into (the stack is the limit).
const MAX_DEPTH: usize = 256;

/// A JSON value: an object's members in order (raw key text, decoded key, value), or any other
/// value as its raw text.
enum Node<'a> {
  Object(Vec<(&'a str, String, Node<'a>)>),
  Raw(&'a str),
}

/// `stored` (raw bytes) with `patch` merged in, or `None` when what is stored is no session JSON
/// can merge into (not UTF-8, not JSON): such a session is absent for the app and left alone.
/// A patch that is not a JSON object is an error.
pub fn merge_or_absent(stored: Vec<u8>, patch: &str) -> BackendResult<Option<String>> {
  let Ok(text) = String::from_utf8(stored) else {
    return Ok(None);
  };
  match merge(&text, patch) {
    Ok(merged) => Ok(Some(merged)),
    Err(e) if e.kind == crate::error::ErrorKind::Unparsable => Ok(None),
    Err(e) => Err(e),
  }
}

/// `stored` with `patch` (a JSON object) merged in, as RFC 7396 says.
pub fn merge(stored: &str, patch: &str) -> BackendResult<String> {
  let target = parse_all(stored).map_err(|why| BackendError::unparsable(format!("the stored session {why}")))?;
  let patch = parse_all(patch).map_err(|why| BackendError::invalid(format!("the patch {why}")))?;
  if !matches!(patch, Node::Object(_)) {
    return Err(BackendError::invalid("the patch is not a JSON object"));
  }
  let mut out = String::with_capacity(stored.len() + 64);
  write(&apply(target, patch), &mut out);
  Ok(out)
}

fn apply<'a>(target: Node<'a>, patch: Node<'a>) -> Node<'a> {
  let Node::Object(changes) = patch else {
    return patch; // not an object: it replaces the target whole
  };
  let mut members = match target {
    Node::Object(members) => members,
    Node::Raw(_) => Vec::new(),
  };
  for (raw_key, key, value) in changes {
    let at = members.iter().position(|(_, k, _)| *k == key);
    match (value, at) {
      (Node::Raw("null"), Some(at)) => {
        members.remove(at);
      }
      (Node::Raw("null"), None) => {}
      (value, Some(at)) => {
        let old = std::mem::replace(&mut members[at].2, Node::Raw("null"));
        members[at].2 = apply(old, value);
      }
      (value, None) => members.push((raw_key, key, apply(Node::Raw("null"), value))),
    }
  }
  Node::Object(members)
}

fn write(node: &Node<'_>, out: &mut String) {
  match node {
    Node::Raw(text) => out.push_str(text),
    Node::Object(members) => {
      out.push('{');
      for (i, (raw_key, _, value)) in members.iter().enumerate() {
        if i > 0 {
          out.push(',');
        }
        out.push_str(raw_key);
        out.push(':');
        write(value, out);
      }
      out.push('}');
    }
  }
}

fn parse_all(text: &str) -> Result<Node<'_>, String> {
  let mut parser = Parser { text, at: 0 };
  let node = parser.value(0)?;
  parser.space();
  if parser.at != text.len() {
    return Err(format!("is not JSON (text after the value at byte {})", parser.at));
  }
  Ok(node)
}

struct Parser<'a> {
  text: &'a str,
  at: usize,
}

impl<'a> Parser<'a> {
  fn peek(&self) -> Option<u8> {
    self.text.as_bytes().get(self.at).copied()
  }

  fn space(&mut self) {
    while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
      self.at += 1;
    }
  }

  fn fail<T>(&self, what: &str) -> Result<T, String> {
    Err(format!("is not JSON ({what} at byte {})", self.at))
  }

  fn value(&mut self, depth: usize) -> Result<Node<'a>, String> {
    if depth > MAX_DEPTH {
      return self.fail("nesting too deep");
    }
    self.space();
    let start = self.at;
    match self.peek() {
      Some(b'{') => self.object(depth),
      Some(b'[') => {
        self.array(depth)?;
        Ok(Node::Raw(&self.text[start..self.at]))
      }
      Some(b'"') => {
        self.string()?;
        Ok(Node::Raw(&self.text[start..self.at]))
      }
      Some(_) => {
        // A number or a literal: up to the next delimiter, and checked to be one.
        while self
          .peek()
          .is_some_and(|b| !matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r'))
        {
          self.at += 1;
        }
        let raw = &self.text[start..self.at];
        if matches!(raw, "true" | "false" | "null") || is_number(raw) {
          Ok(Node::Raw(raw))
        } else {
          self.fail("a value expected")
        }
      }
      None => self.fail("a value expected"),
    }
  }

  fn object(&mut self, depth: usize) -> Result<Node<'a>, String> {
    self.at += 1; // {
    let mut members = Vec::new();
    self.space();
    if self.peek() == Some(b'}') {
      self.at += 1;
      return Ok(Node::Object(members));
    }
    loop {
      self.space();
      let start = self.at;
      if self.peek() != Some(b'"') {
        return self.fail("a key expected");
      }
      let key = self.string()?;
      let raw_key = &self.text[start..self.at];
      self.space();
      if self.peek() != Some(b':') {
        return self.fail("':' expected");
      }
      self.at += 1;
      let value = self.value(depth + 1)?;
      members.push((raw_key, key, value));
      self.space();
      match self.peek() {
        Some(b',') => self.at += 1,
        Some(b'}') => {
          self.at += 1;
          return Ok(Node::Object(members));
        }
        _ => return self.fail("',' or '}' expected"),
      }
    }
  }

  fn array(&mut self, depth: usize) -> Result<(), String> {
    self.at += 1; // [
    self.space();
    if self.peek() == Some(b']') {
      self.at += 1;
      return Ok(());
    }
    loop {
      self.value(depth + 1)?;
      self.space();
      match self.peek() {
        Some(b',') => self.at += 1,
        Some(b']') => {
          self.at += 1;
          return Ok(());
        }
        _ => return self.fail("',' or ']' expected"),
      }
    }
  }

  /// A string, decoded (for comparing keys); `at` moves past its closing quote.
  fn string(&mut self) -> Result<String, String> {
    self.at += 1; // "
    let mut decoded = String::new();
    loop {
      let rest = &self.text[self.at..];
      let Some(i) = rest.find(['"', '\\']) else {
        return self.fail("an unterminated string");
      };
      decoded.push_str(&rest[..i]);
      self.at += i;
      if self.peek() == Some(b'"') {
        self.at += 1;
        return Ok(decoded);
      }
      // An escape: its meaning only matters for comparing keys.
      let escape = self.text.as_bytes().get(self.at + 1).copied();
      self.at += 2;
      match escape {
        Some(b'u') => {
          let hex = self.text.get(self.at..self.at + 4).unwrap_or("");
          let unit =
            u32::from_str_radix(hex, 16).map_err(|_| format!("is not JSON (a bad \\u escape at byte {})", self.at))?;
          decoded.push(char::from_u32(unit).unwrap_or('\u{fffd}'));
          self.at += 4;
        }
        Some(b'n') => decoded.push('\n'),
        Some(b't') => decoded.push('\t'),
        Some(b'r') => decoded.push('\r'),
        Some(b'b') => decoded.push('\u{8}'),
        Some(b'f') => decoded.push('\u{c}'),
        Some(c @ (b'"' | b'\\' | b'/')) => decoded.push(char::from(c)),
        _ => return self.fail("a bad escape"),
      }
    }
  }
}

fn is_number(raw: &str) -> bool {
  let digits = raw.strip_prefix('-').unwrap_or(raw);
  !digits.is_empty()
    && digits.starts_with(|c: char| c.is_ascii_digit())
    && digits
      .bytes()
      .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
}

#[cfg(test)]
mod tests {
  use super::*;

  fn merged(stored: &str, patch: &str) -> String {
    merge(stored, patch).unwrap_or_else(|e| panic!("{}", e.detail))
  }

  #[test]
  fn rfc_7396_examples() {
    // The RFC's own table, written compactly as JSON.stringify writes.
    let cases = [
      (r#"{"a":"b"}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
      (r#"{"a":"b"}"#, r#"{"b":"c"}"#, r#"{"a":"b","b":"c"}"#),
      (r#"{"a":"b"}"#, r#"{"a":null}"#, r#"{}"#),
      (r#"{"a":"b","b":"c"}"#, r#"{"a":null}"#, r#"{"b":"c"}"#),
      (r#"{"a":["b"]}"#, r#"{"a":"c"}"#, r#"{"a":"c"}"#),
      (r#"{"a":"c"}"#, r#"{"a":["b"]}"#, r#"{"a":["b"]}"#),
      (
        r#"{"a":{"b":"c"}}"#,
        r#"{"a":{"b":"d","c":null}}"#,
        r#"{"a":{"b":"d"}}"#,
      ),
      (r#"{"a":[{"b":"c"}]}"#, r#"{"a":[1]}"#, r#"{"a":[1]}"#),
      (r#"{"e":null}"#, r#"{"a":1}"#, r#"{"e":null,"a":1}"#),
      (r#"{}"#, r#"{"a":{"bb":{"ccc":null}}}"#, r#"{"a":{"bb":{}}}"#),
    ];
    for (stored, patch, want) in cases {
      assert_eq!(merged(stored, patch), want, "{stored} + {patch}");
    }
  }

  #[test]
  fn untouched_members_keep_their_bytes_and_places() {
    let stored = r#"{"cookie":{"originalMaxAge":1000,"expires":"2026-01-01T00:00:00.000Z"},"big":1e+21,"s":"\u2028\"x\"","n":{"k":[1,{"a":2}]}}"#;
    let patch = r#"{"cookie":{"expires":"2026-01-02T00:00:00.000Z"},"n":{"new":true},"added":"é"}"#;
    assert_eq!(
      merged(stored, patch),
      r#"{"cookie":{"originalMaxAge":1000,"expires":"2026-01-02T00:00:00.000Z"},"big":1e+21,"s":"\u2028\"x\"","n":{"k":[1,{"a":2}],"new":true},"added":"é"}"#
    );
  }

  #[test]
  fn keys_are_compared_decoded() {
    assert_eq!(merged(r#"{"\u0061":1}"#, r#"{"a":2}"#), r#"{"\u0061":2}"#);
  }

  #[test]
  fn what_is_not_json_is_refused() {
    for bad in [
      "",
      "{",
      r#"{"a":}"#,
      r#"{"a":1,}"#,
      "password=hunter2",
      r#"{"a":tru}"#,
      "{} x",
    ] {
      assert!(merge(bad, "{}").is_err(), "{bad}");
    }
    assert!(merge("{}", "[1]").is_err());
    let deep = format!("{}{}", "{\"a\":".repeat(300), "1".to_string() + &"}".repeat(300));
    assert!(merge(&deep, "{}").is_err());
  }
}
