//! One streaming pass over a response before it is deserialized. xsd-parser's
//! deserializers fail on elements the schema does not declare, but servers
//! add elements and attributes in every version; this pass keeps only what the
//! schema declares for each element's type (a table generated from the same
//! schema), and so makes the bindings tolerant without losing declared data.
//!
//! It also makes the document safe and plain: a DTD (entity expansion,
//! external entities) is refused, character references that XML 1.0 forbids
//! (Exchange emits `&#x0;`) are dropped, and namespaces are rewritten to one
//! declaration per namespace on the root, so that the default-namespace and
//! prefixed forms reach the deserializer alike.

use quick_xml::events::{BytesEnd, BytesRef, BytesStart, Event};
use quick_xml::name::ResolveResult;
use quick_xml::reader::NsReader;
use quick_xml::Writer;

/// How often a declared child may occur (from its and its groups'
/// `minOccurs`/`maxOccurs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Occurs {
    /// At least once (a choice's branches never are).
    pub required: bool,
    /// More than once.
    pub repeats: bool,
}

/// What a type's text is checked as, as the generated deserializers do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ValueKind {
    /// Element content (or `xs:any`), no value of its own.
    Complex,
    /// `xs:int`.
    Int,
    /// `xs:short`.
    Short,
    /// `xs:boolean`.
    Boolean,
    /// Anything else: strings, open enumerations, lists, dates.
    Text,
}

/// One type's declared content.
#[derive(Debug)]
pub struct FilterType {
    /// Declared child elements, in schema order: namespace, local name,
    /// index of their type.
    pub children: &'static [(&'static str, &'static str, usize)],
    /// How often each of `children` may occur.
    pub occurs: &'static [Occurs],
    /// Declared (unqualified) attributes.
    pub attributes: &'static [&'static str],
    /// The type's content is `xs:any` (`MessageXml`).
    pub any_children: bool,
    /// What the type's text is.
    pub value: ValueKind,
}

/// The filter table of one generated schema family (EWS, SOAP autodiscover,
/// POX request, POX response).
#[derive(Debug)]
pub struct FilterSchema {
    pub(crate) types: &'static [FilterType],
    /// Root elements: namespace, local name, index of their type.
    pub(crate) roots: &'static [(&'static str, &'static str, usize)],
}

impl FilterSchema {
    pub(crate) fn root_type(&self, namespace: &str, local: &str) -> Option<usize> {
        self.roots
            .iter()
            .find(|(ns, name, _)| *ns == namespace && *name == local)
            .map(|(_, _, t)| *t)
    }
}

// The EWS family's table: `FILTER_SCHEMA`.
pub(crate) use crate::generated::ews::filter_table::FILTER_SCHEMA;

/// Why a document could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum XmlError {
    #[error("malformed XML at byte {position}: {message}")]
    Malformed { position: u64, message: String },
    #[error("the response contains a DTD (<!DOCTYPE>); EWS never sends one, so it is refused (entity expansion and external entities are not processed)")]
    Doctype,
    #[error("the response uses the entity &{0}; which XML does not predefine")]
    UnknownEntity(String),
    #[error("the schema declares no element {{{namespace}}}{local} here")]
    UnexpectedRoot { namespace: String, local: String },
    #[error("the response ended before the element was complete")]
    Truncated,
    #[error("the response is encoded as {encoding}, not UTF-8 (so its byte-order mark or XML declaration says); Exchange always answers in UTF-8: check what sits between us and the server (a proxy rewriting responses) and that the URL is an Exchange server")]
    NotUtf8 { encoding: String },
}

/// Name/value pairs, in document order.
pub type NameValues = Vec<(String, String)>;

/// The `xs:any` content found in a kept document (`MessageXml`), by owner.
#[derive(Clone, Default)]
pub struct OpenContent {
    /// The local name of the element that holds the open content's parent
    /// (`ResponseMessage`), its ordinal among same-named elements, and the
    /// name/value pairs found: `<t:Value Name="X">v</t:Value>` gives ("X", v),
    /// `<t:LineNumber>3</t:LineNumber>` gives ("LineNumber", "3").
    pub entries: Vec<(String, usize, NameValues)>,
    /// Position in `entries` by owner and ordinal: a response holds one
    /// owner per mailbox, so a linear search made parsing quadratic.
    index: std::collections::HashMap<(String, usize), usize>,
}

/// Entries examined by [`OpenContent`]'s additions and look-ups since the
/// process started: the parsers' work on open content, counted so that a
/// test can assert it grows linearly with the document (tests may not time).
static OPEN_CONTENT_PROBES: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

/// See [`OPEN_CONTENT_PROBES`]; for tests.
#[doc(hidden)]
pub fn open_content_probes() -> u64 {
    OPEN_CONTENT_PROBES.load(std::sync::atomic::Ordering::Relaxed)
}

fn count_probe() {
    OPEN_CONTENT_PROBES.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
}

impl PartialEq for OpenContent {
    fn eq(&self, other: &Self) -> bool {
        // The index follows from the entries.
        self.entries == other.entries
    }
}

impl Eq for OpenContent {}

impl std::fmt::Debug for OpenContent {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("OpenContent")
            .field("entries", &self.entries)
            .finish()
    }
}

impl OpenContent {
    /// Adds a name/value pair to the `ordinal`-th `owner` element's content.
    pub(crate) fn push(&mut self, owner: String, ordinal: usize, entry: (String, String)) {
        count_probe();
        // Pairs of one element arrive together: the last entry is the usual hit.
        if let Some((o, n, values)) = self.entries.last_mut() {
            if *o == owner && *n == ordinal {
                values.push(entry);
                return;
            }
        }
        match self.index.entry((owner, ordinal)) {
            std::collections::hash_map::Entry::Occupied(at) => {
                self.entries[*at.get()].2.push(entry);
            }
            std::collections::hash_map::Entry::Vacant(slot) => {
                let (owner, ordinal) = slot.key().clone();
                slot.insert(self.entries.len());
                self.entries.push((owner, ordinal, vec![entry]));
            }
        }
    }

    /// The values of the `ordinal`-th `owner` element's open content.
    pub fn values(&self, owner: &str, ordinal: usize) -> &[(String, String)] {
        count_probe();
        self.index
            .get(&(owner.to_owned(), ordinal))
            .map(|&i| self.entries[i].2.as_slice())
            .unwrap_or(&[])
    }
}

fn malformed(reader: &NsReader<&[u8]>, e: impl std::fmt::Display) -> XmlError {
    XmlError::Malformed {
        position: reader.buffer_position(),
        message: e.to_string(),
    }
}

/// True for a character reference XML 1.0 does not allow (`&#x0;`).
pub(crate) fn is_forbidden_char_ref(name: &[u8]) -> bool {
    let Some(rest) = name.strip_prefix(b"#") else {
        return false;
    };
    let text = std::str::from_utf8(rest).unwrap_or("");
    let code = match text.strip_prefix('x').or_else(|| text.strip_prefix('X')) {
        Some(hex) => u32::from_str_radix(hex, 16),
        None => text.parse::<u32>(),
    };
    match code {
        Ok(c) => {
            !matches!(c, 0x9 | 0xA | 0xD | 0x20..=0xD7FF | 0xE000..=0xFFFD | 0x10000..=0x10FFFF)
        }
        Err(_) => true,
    }
}

pub(crate) const PREDEFINED: [&[u8]; 5] = [b"lt", b"gt", b"amp", b"apos", b"quot"];

/// Copies the element whose start event was just read (`start`, `empty`)
/// from `reader` into a standalone document, keeping only declared content.
pub(crate) fn copy_element(
    reader: &mut NsReader<&[u8]>,
    start: &BytesStart<'_>,
    empty: bool,
    schema: &FilterSchema,
    root_type: usize,
    open_content: &mut OpenContent,
) -> Result<Vec<u8>, XmlError> {
    let mut namespaces: Vec<String> = Vec::new();
    let mut writer = Writer::new(Vec::with_capacity(4096));
    // (type index, written name, open-content collector depth)
    let mut stack: Vec<(usize, String)> = Vec::new();
    let mut owner_counts: std::collections::HashMap<String, usize> = Default::default();
    let mut owner_stack: Vec<String> = Vec::new();

    let (ns, local) = resolved(reader, start)?;
    let name = prefixed(&mut namespaces, &ns, &local);
    let mut root = BytesStart::new(name.clone());
    copy_attributes(start, &mut root, schema.types[root_type].attributes, reader)?;
    // Namespace declarations are added when the root is written (below),
    // once every namespace used inside is known.
    let mut body = Writer::new(Vec::with_capacity(4096));
    if !empty {
        stack.push((root_type, name.clone()));
        owner_stack.push(local.clone());
        *owner_counts.entry(local.clone()).or_default() += 0;
    }
    let mut depth_skip = 0usize;
    while !stack.is_empty() {
        let event = reader.read_event().map_err(|e| malformed(reader, e))?;
        if depth_skip > 0 {
            match event {
                Event::Start(_) => depth_skip += 1,
                Event::End(_) => depth_skip -= 1,
                Event::Eof => return Err(XmlError::Truncated),
                _ => {}
            }
            continue;
        }
        let (current, _) = stack.last().cloned().expect("loop condition");
        match event {
            Event::Start(ref e) | Event::Empty(ref e) => {
                let is_empty = matches!(event, Event::Empty(_));
                let (cns, clocal) = resolved(reader, e)?;
                let ty = &schema.types[current];
                if ty.any_children {
                    let owner = owner_stack.iter().rev().nth(1).cloned().unwrap_or_default();
                    let ordinal = owner_counts
                        .get(&owner)
                        .copied()
                        .unwrap_or(1)
                        .saturating_sub(1);
                    let entry = read_open_entry(reader, e, &clocal, is_empty)?;
                    open_content.push(owner, ordinal, entry);
                    continue;
                }
                let Some(&(_, _, child_type)) = ty
                    .children
                    .iter()
                    .find(|(n, l, _)| *n == cns && *l == clocal)
                else {
                    if !is_empty {
                        depth_skip = 1;
                    }
                    continue;
                };
                let cname = prefixed(&mut namespaces, &cns, &clocal);
                let mut out = BytesStart::new(cname.clone());
                copy_attributes(e, &mut out, schema.types[child_type].attributes, reader)?;
                *owner_counts.entry(clocal.clone()).or_default() += 1;
                if is_empty {
                    body.write_event(Event::Empty(out))
                        .expect("in-memory write");
                } else {
                    body.write_event(Event::Start(out))
                        .expect("in-memory write");
                    stack.push((child_type, cname));
                    owner_stack.push(clocal);
                }
            }
            Event::End(_) => {
                let (_, written) = stack.pop().expect("loop condition");
                owner_stack.pop();
                if !stack.is_empty() {
                    body.write_event(Event::End(BytesEnd::new(written)))
                        .expect("in-memory write");
                }
            }
            Event::Text(t) => {
                body.write_event(Event::Text(t)).expect("in-memory write");
            }
            Event::CData(c) => {
                body.write_event(Event::CData(c)).expect("in-memory write");
            }
            Event::GeneralRef(r) => {
                if is_forbidden_char_ref(&r) {
                    continue;
                }
                if !r.starts_with(b"#") && !PREDEFINED.contains(&r.as_ref()) {
                    return Err(XmlError::UnknownEntity(
                        String::from_utf8_lossy(&r).into_owned(),
                    ));
                }
                body.write_event(Event::GeneralRef(BytesRef::new(
                    String::from_utf8_lossy(&r).into_owned(),
                )))
                .expect("in-memory write");
            }
            Event::DocType(_) => return Err(XmlError::Doctype),
            Event::Eof => return Err(XmlError::Truncated),
            Event::Comment(_) | Event::PI(_) | Event::Decl(_) => {}
        }
    }
    for (i, ns) in namespaces.iter().enumerate() {
        root.push_attribute((format!("xmlns:n{i}").as_str(), ns.as_str()));
    }
    if empty {
        writer
            .write_event(Event::Empty(root))
            .expect("in-memory write");
    } else {
        writer
            .write_event(Event::Start(root))
            .expect("in-memory write");
        writer.get_mut().extend_from_slice(&body.into_inner());
        writer
            .write_event(Event::End(BytesEnd::new(name)))
            .expect("in-memory write");
    }
    Ok(writer.into_inner())
}

/// Reads one child of an `xs:any` element as a name/value pair.
pub(crate) fn read_open_entry(
    reader: &mut NsReader<&[u8]>,
    start: &BytesStart<'_>,
    local: &str,
    empty: bool,
) -> Result<(String, String), XmlError> {
    let mut key = local.to_owned();
    for attr in start.attributes().flatten() {
        if attr.key.as_ref() == b"Name" {
            key = attr
                .decode_and_unescape_value(reader.decoder())
                .map_err(|e| malformed(reader, e))?
                .into_owned();
        }
    }
    let mut value = String::new();
    if !empty {
        let mut depth = 1;
        while depth > 0 {
            match reader.read_event().map_err(|e| malformed(reader, e))? {
                Event::Start(_) => depth += 1,
                Event::End(_) => depth -= 1,
                Event::Text(t) => value.push_str(&t.decode().map_err(|e| malformed(reader, e))?),
                Event::GeneralRef(r) => {
                    if let Ok(Some(c)) = r.resolve_char_ref() {
                        value.push(c);
                    } else if let Some(s) =
                        quick_xml::escape::resolve_predefined_entity(&String::from_utf8_lossy(&r))
                    {
                        value.push_str(s);
                    }
                }
                Event::DocType(_) => return Err(XmlError::Doctype),
                Event::Eof => return Err(XmlError::Truncated),
                _ => {}
            }
        }
    }
    Ok((key, value.trim().to_owned()))
}

fn resolved(
    reader: &NsReader<&[u8]>,
    start: &BytesStart<'_>,
) -> Result<(String, String), XmlError> {
    let (result, local) = reader.resolver().resolve_element(start.name());
    let ns = match result {
        ResolveResult::Bound(ns) => String::from_utf8_lossy(ns.as_ref()).into_owned(),
        ResolveResult::Unbound => String::new(),
        ResolveResult::Unknown(p) => {
            return Err(malformed(
                reader,
                format!(
                    "undeclared namespace prefix {}",
                    String::from_utf8_lossy(&p)
                ),
            ))
        }
    };
    Ok((ns, String::from_utf8_lossy(local.as_ref()).into_owned()))
}

fn prefixed(namespaces: &mut Vec<String>, ns: &str, local: &str) -> String {
    let index = match namespaces.iter().position(|n| n == ns) {
        Some(i) => i,
        None => {
            namespaces.push(ns.to_owned());
            namespaces.len() - 1
        }
    };
    format!("n{index}:{local}")
}

fn copy_attributes(
    from: &BytesStart<'_>,
    to: &mut BytesStart<'_>,
    declared: &[&str],
    reader: &NsReader<&[u8]>,
) -> Result<(), XmlError> {
    for attr in from.attributes() {
        let attr = attr.map_err(|e| malformed(reader, e))?;
        let key = attr.key.as_ref();
        if key.contains(&b':') || key == b"xmlns" {
            continue;
        }
        if declared.iter().any(|d| d.as_bytes() == key) {
            to.push_attribute((key, attr.value.as_ref()));
        }
    }
    Ok(())
}
