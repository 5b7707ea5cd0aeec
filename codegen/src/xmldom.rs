//! A minimal XML tree for the schema transformations: enough to read an XSD
//! or WSDL file, edit it and write it back. Comments and processing
//! instructions are dropped; they carry nothing the generator needs.

use quick_xml::events::{BytesEnd, BytesStart, BytesText, Event};
use quick_xml::{Reader, Writer};

#[derive(Debug, Clone)]
pub enum Node {
    Element(Element),
    Text(String),
}

#[derive(Debug, Clone)]
pub struct Element {
    /// The qualified name as written (`xs:element`).
    pub name: String,
    pub attrs: Vec<(String, String)>,
    pub children: Vec<Node>,
}

impl Element {
    pub fn new(name: &str) -> Self {
        Element {
            name: name.to_owned(),
            attrs: Vec::new(),
            children: Vec::new(),
        }
    }

    /// The local part of the name (`element` for `xs:element`).
    pub fn local(&self) -> &str {
        self.name.rsplit(':').next().unwrap_or(&self.name)
    }

    pub fn attr(&self, name: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_str())
    }

    pub fn with_attr(mut self, name: &str, value: &str) -> Self {
        self.attrs.push((name.to_owned(), value.to_owned()));
        self
    }

    pub fn elements(&self) -> impl Iterator<Item = &Element> {
        self.children.iter().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    pub fn elements_mut(&mut self) -> impl Iterator<Item = &mut Element> {
        self.children.iter_mut().filter_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
    }

    /// Every element below this one, depth first.
    pub fn descendants(&self) -> Vec<&Element> {
        let mut out = Vec::new();
        for child in self.elements() {
            out.push(child);
            out.extend(child.descendants());
        }
        out
    }
}

pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = vec![Element::new("#document")];
    loop {
        match reader
            .read_event()
            .map_err(|e| format!("XML error at byte {}: {e}", reader.buffer_position()))?
        {
            Event::Start(start) => stack.push(element_of(&start, reader.decoder())?),
            Event::Empty(start) => {
                let element = element_of(&start, reader.decoder())?;
                push_child(&mut stack, Node::Element(element));
            }
            Event::End(_) => {
                let done = stack.pop().ok_or("unbalanced end tag")?;
                push_child(&mut stack, Node::Element(done));
            }
            Event::Text(text) => {
                let text = text.decode().map_err(|e| e.to_string())?;
                if !text.trim().is_empty() {
                    push_child(&mut stack, Node::Text(text.into_owned()));
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    let mut document = stack.pop().ok_or("empty document")?;
    let root = document
        .children
        .drain(..)
        .find_map(|n| match n {
            Node::Element(e) => Some(e),
            Node::Text(_) => None,
        })
        .ok_or("document has no root element")?;
    Ok(root)
}

fn push_child(stack: &mut [Element], node: Node) {
    if let Some(parent) = stack.last_mut() {
        parent.children.push(node);
    }
}

fn element_of(
    start: &BytesStart<'_>,
    decoder: quick_xml::encoding::Decoder,
) -> Result<Element, String> {
    let name = String::from_utf8_lossy(start.name().as_ref()).into_owned();
    let mut attrs = Vec::new();
    for attr in start.attributes() {
        let attr = attr.map_err(|e| e.to_string())?;
        let key = String::from_utf8_lossy(attr.key.as_ref()).into_owned();
        let value = attr
            .decode_and_unescape_value(decoder)
            .map_err(|e| e.to_string())?
            .into_owned();
        attrs.push((key, value));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
    })
}

pub fn write(root: &Element) -> String {
    let mut writer = Writer::new_with_indent(Vec::new(), b' ', 2);
    write_element(&mut writer, root);
    let mut out = String::from("<?xml version=\"1.0\" encoding=\"utf-8\"?>\n");
    out.push_str(&String::from_utf8(writer.into_inner()).expect("UTF-8 in, UTF-8 out"));
    out.push('\n');
    out
}

fn write_element(writer: &mut Writer<Vec<u8>>, element: &Element) {
    let mut start = BytesStart::new(element.name.as_str());
    for (k, v) in &element.attrs {
        start.push_attribute((k.as_str(), v.as_str()));
    }
    if element.children.is_empty() {
        writer
            .write_event(Event::Empty(start))
            .expect("in-memory write");
        return;
    }
    writer
        .write_event(Event::Start(start))
        .expect("in-memory write");
    for child in &element.children {
        match child {
            Node::Element(e) => write_element(writer, e),
            Node::Text(t) => writer
                .write_event(Event::Text(BytesText::new(t)))
                .expect("in-memory write"),
        }
    }
    writer
        .write_event(Event::End(BytesEnd::new(element.name.as_str())))
        .expect("in-memory write");
}
