//! Kernel command line parsing.
//!
//! The kernel splits its command line at spaces outside double quotes and drops the
//! quotes; this module does the same. `key=value` splits at the first `=`, a bare `key`
//! maps to an empty string, a later occurrence of a key replaces an earlier one, and the
//! `--` that separates init's arguments is ignored.

use std::collections::BTreeMap;
use std::path::PathBuf;

use crate::Error;

const PROC_CMDLINE: &str = "/proc/cmdline";

/// Parses a kernel command line into a key → value map.
pub fn parse(text: &str) -> BTreeMap<String, String> {
    let mut map = BTreeMap::new();
    for word in split_words(text) {
        if word == "--" {
            continue;
        }
        match word.split_once('=') {
            Some((key, value)) => map.insert(key.to_owned(), value.to_owned()),
            None => map.insert(word, String::new()),
        };
    }
    map
}

/// Reads and parses `/proc/cmdline`.
pub fn read() -> Result<BTreeMap<String, String>, Error> {
    let text = std::fs::read_to_string(PROC_CMDLINE).map_err(|source| Error::Read {
        path: PathBuf::from(PROC_CMDLINE),
        source,
    })?;
    Ok(parse(&text))
}

/// Splits at whitespace outside double quotes, removing the quotes.
fn split_words(text: &str) -> Vec<String> {
    let mut words = Vec::new();
    let mut current = String::new();
    let mut in_word = false;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '"' => {
                quoted = !quoted;
                in_word = true;
            }
            c if c.is_whitespace() && !quoted => {
                if in_word {
                    words.push(std::mem::take(&mut current));
                    in_word = false;
                }
            }
            c => {
                current.push(c);
                in_word = true;
            }
        }
    }
    if in_word {
        words.push(current);
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get<'a>(map: &'a BTreeMap<String, String>, key: &str) -> Option<&'a str> {
        map.get(key).map(String::as_str)
    }

    #[test]
    fn key_value_and_bare_keys() {
        let map = parse("BOOT_IMAGE=/boot/vmlinuz console=ttyS0,115200 quiet ro\n");
        assert_eq!(get(&map, "BOOT_IMAGE"), Some("/boot/vmlinuz"));
        assert_eq!(get(&map, "console"), Some("ttyS0,115200"));
        assert_eq!(get(&map, "quiet"), Some(""));
        assert_eq!(get(&map, "ro"), Some(""));
        assert_eq!(map.len(), 4);
    }

    #[test]
    fn quoted_values_keep_spaces() {
        let map = parse(r#"appliance.motd="hello  world" x=1 "y=a b""#);
        assert_eq!(get(&map, "appliance.motd"), Some("hello  world"));
        assert_eq!(get(&map, "x"), Some("1"));
        assert_eq!(get(&map, "y"), Some("a b"));
    }

    #[test]
    fn value_may_contain_equals_and_later_key_wins() {
        let map = parse("appliance.password=a=b appliance.ip=1 appliance.ip=10.0.2.15/24");
        assert_eq!(get(&map, "appliance.password"), Some("a=b"));
        assert_eq!(get(&map, "appliance.ip"), Some("10.0.2.15/24"));
    }

    #[test]
    fn empty_value_separator_and_blank_input() {
        let map = parse("  a= \t -- b=\"\"  ");
        assert_eq!(get(&map, "a"), Some(""));
        assert_eq!(get(&map, "b"), Some(""));
        assert!(!map.contains_key("--"));
        assert!(parse("").is_empty());
        assert!(parse(" \n").is_empty());
    }
}
