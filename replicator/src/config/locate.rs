//! Which key and line of the file an error is about, from the spans of the
//! parsed document.

use std::ops::Range;

use toml::de::{DeTable, DeValue};

/// The parsed document with its source, to find keys and lines.
pub(super) struct SourceMap<'i> {
    text: &'i str,
    table: Option<DeTable<'i>>,
}

impl<'i> SourceMap<'i> {
    pub fn new(text: &'i str) -> SourceMap<'i> {
        let table = DeTable::parse(text).ok().map(|t| t.into_inner());
        SourceMap { text, table }
    }

    /// 1-based line of a byte offset.
    pub fn line_of(&self, offset: usize) -> usize {
        let end = offset.min(self.text.len());
        self.text.as_bytes()[..end]
            .iter()
            .filter(|b| **b == b'\n')
            .count()
            + 1
    }

    /// The dotted key whose name or value covers `offset` (the innermost).
    pub fn key_at(&self, offset: usize) -> Option<String> {
        let path = path_at(self.table.as_ref()?, offset);
        (!path.is_empty()).then(|| path.join("."))
    }

    /// The line of the dotted key `key` (`exchange.url`), or of its
    /// innermost existing parent.
    pub fn line_of_key(&self, key: &str) -> Option<usize> {
        let mut table = self.table.as_ref()?;
        let mut found: Option<Range<usize>> = None;
        for part in key.split('.') {
            let Some((name, value)) = table.iter().find(|(k, _)| k.get_ref() == part) else {
                break;
            };
            found = Some(name.span());
            match value.get_ref() {
                DeValue::Table(inner) => table = inner,
                _ => break,
            }
        }
        found.map(|span| self.line_of(span.start))
    }
}

fn path_at(table: &DeTable<'_>, offset: usize) -> Vec<String> {
    for (name, value) in table.iter() {
        if let DeValue::Table(inner) = value.get_ref() {
            let inner_path = path_at(inner, offset);
            if !inner_path.is_empty() {
                let mut path = vec![name.get_ref().to_string()];
                path.extend(inner_path);
                return path;
            }
        }
        if name.span().contains(&offset) || value.span().contains(&offset) {
            return vec![name.get_ref().to_string()];
        }
    }
    Vec::new()
}
