//! The table that drives the runtime's unknown-content filter: for every type
//! a response can reach, which child elements (by namespace and local name, and
//! the type each has) and which attributes it declares. It is derived from
//! xsd-parser's interpretation of the same schema the bindings come from, so
//! the filter and the generated deserializers always agree.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use xsd_parser::models::meta::{
    AttributeMetaVariant, Base, ElementMetaVariant, ElementMode, MetaTypeVariant,
};
use xsd_parser::models::schema::NamespaceId;
use xsd_parser::{IdentType, MetaTypes, TypeIdent};

#[derive(Default)]
struct Entry {
    children: Vec<(String, String, TypeIdent)>,
    attributes: Vec<String>,
    any_children: bool,
}

fn namespace_uri(types: &MetaTypes, ns: NamespaceId) -> String {
    types
        .modules
        .get(&ns)
        .and_then(|m| m.namespace.as_ref())
        .map(|n| n.to_string())
        .unwrap_or_default()
}

/// Follows references (element → its type, typedefs) to the defining type.
fn resolve<'a>(types: &'a MetaTypes, ident: &'a TypeIdent) -> Option<&'a TypeIdent> {
    let mut current = ident;
    for _ in 0..64 {
        match &types.items.get(current)?.variant {
            MetaTypeVariant::Reference(r) => current = &r.type_,
            _ => return Some(current),
        }
    }
    None
}

fn collect(types: &MetaTypes, ident: &TypeIdent, entry: &mut Entry, depth: usize) {
    if depth > 32 {
        return;
    }
    let Some(ident) = resolve(types, ident) else {
        return;
    };
    let Some(meta) = types.items.get(ident) else {
        return;
    };
    match &meta.variant {
        MetaTypeVariant::ComplexType(complex) => {
            if let Base::Extension(base) | Base::Restriction(base) = &complex.base {
                collect(types, base, entry, depth + 1);
            }
            for attr in complex.attributes.iter() {
                if let AttributeMetaVariant::Type(_) = attr.variant {
                    entry.attributes.push(attr.ident.name.as_str().to_owned());
                }
            }
            if let Some(content) = &complex.content {
                collect(types, content, entry, depth + 1);
            }
        }
        MetaTypeVariant::Sequence(group)
        | MetaTypeVariant::Choice(group)
        | MetaTypeVariant::All(group) => {
            for element in group.elements.iter() {
                match &element.variant {
                    ElementMetaVariant::Type {
                        type_,
                        mode: ElementMode::Element,
                    } => {
                        entry.children.push((
                            namespace_uri(types, element.ident.ns),
                            element.ident.name.as_str().to_owned(),
                            type_.clone(),
                        ));
                    }
                    ElementMetaVariant::Type {
                        type_,
                        mode: ElementMode::Group,
                    } => {
                        collect(types, type_, entry, depth + 1);
                    }
                    ElementMetaVariant::Any { .. } => entry.any_children = true,
                    ElementMetaVariant::Text => {}
                }
            }
        }
        _ => {}
    }
}

/// Renders the table for the types reachable from `roots` (element names).
pub fn render(types: &MetaTypes, roots: &[(String, String)]) -> Result<String, String> {
    let mut index: BTreeMap<TypeIdent, usize> = BTreeMap::new();
    let mut order: Vec<Entry> = Vec::new();
    let mut queue: VecDeque<TypeIdent> = VecDeque::new();
    let mut root_rows = Vec::new();

    let intern = |ident: &TypeIdent,
                  index: &mut BTreeMap<TypeIdent, usize>,
                  order: &mut Vec<Entry>,
                  queue: &mut VecDeque<TypeIdent>|
     -> usize {
        let key = resolve(types, ident).unwrap_or(ident).clone();
        if let Some(&i) = index.get(&key) {
            return i;
        }
        let i = order.len();
        index.insert(key.clone(), i);
        order.push(Entry::default());
        queue.push_back(key);
        i
    };

    for (ns, name) in roots {
        let ident = types
            .items
            .keys()
            .find(|k| {
                k.type_ == IdentType::Element
                    && k.name.as_str() == name
                    && namespace_uri(types, k.ns) == *ns
            })
            .ok_or_else(|| format!("the schema declares no element {{{ns}}}{name}"))?
            .clone();
        let i = intern(&ident, &mut index, &mut order, &mut queue);
        root_rows.push((ns.clone(), name.clone(), i));
    }

    // per type: children (namespace, local name, type index), attributes, any content
    type Row = (Vec<(String, String, usize)>, Vec<String>, bool);
    let mut rendered: Vec<Row> = Vec::new();
    while let Some(ident) = queue.pop_front() {
        let mut entry = Entry::default();
        collect(types, &ident, &mut entry, 0);
        let children = entry
            .children
            .iter()
            .map(|(ns, local, ty)| {
                (
                    ns.clone(),
                    local.clone(),
                    intern(ty, &mut index, &mut order, &mut queue),
                )
            })
            .collect();
        let i = index[&ident];
        if rendered.len() <= i {
            rendered.resize_with(i + 1, Default::default);
        }
        rendered[i] = (children, entry.attributes, entry.any_children);
    }
    rendered.resize_with(order.len(), Default::default);

    let mut out = String::new();
    out.push_str("pub(crate) static FILTER_SCHEMA: FilterSchema = FilterSchema {\n    types: &[\n");
    // A type's index is its position; children name their type by index.
    for (children, attributes, any) in &rendered {
        let _ = write!(out, "    FilterType {{ children: &[");
        for (ns, local, ty) in children {
            let _ = write!(out, "({ns:?}, {local:?}, {ty}), ");
        }
        out.push_str("], attributes: &[");
        for a in attributes {
            let _ = write!(out, "{a:?}, ");
        }
        let _ = writeln!(out, "], any_children: {any} }},");
    }
    out.push_str("    ],\n    roots: &[\n");
    for (ns, name, i) in root_rows {
        let _ = writeln!(out, "        ({ns:?}, {name:?}, {i}),");
    }
    out.push_str("    ],\n};\n");
    Ok(out)
}
