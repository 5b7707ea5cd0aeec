//! The table that drives the runtime's unknown-content filter: for every type
//! a response can reach, which child elements (by namespace and local name, and
//! the type each has) and which attributes it declares. It is derived from
//! xsd-parser's interpretation of the same schema the bindings come from, so
//! the filter and the generated deserializers always agree.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;

use xsd_parser::models::meta::{
    AttributeMetaVariant, Base, BuildInMeta, ElementMetaVariant, ElementMode, MetaTypeVariant,
};
use xsd_parser::models::schema::{MaxOccurs, NamespaceId};
use xsd_parser::{IdentType, MetaTypes, TypeIdent};

/// How often a child may occur, as the fast reader needs it: at least once
/// (`required`), more than once (`repeats`).
#[derive(Clone, Copy)]
struct Occurs {
    required: bool,
    repeats: bool,
}

#[derive(Default)]
struct Entry {
    children: Vec<(String, String, TypeIdent)>,
    occurs: Vec<Occurs>,
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

/// What a simple type's text is checked as (the fast reader validates what
/// the generated deserializers validate): `Int`, `Short`, `Boolean`, or
/// `Text` (strings, open enumerations, lists, dates); `Complex` for the rest.
fn value_kind(types: &MetaTypes, ident: &TypeIdent) -> &'static str {
    let mut current = ident.clone();
    for _ in 0..64 {
        let Some(resolved) = resolve(types, &current) else {
            return "Text";
        };
        let Some(meta) = types.items.get(resolved) else {
            return "Text";
        };
        match &meta.variant {
            MetaTypeVariant::BuildIn(BuildInMeta::I32) => return "Int",
            MetaTypeVariant::BuildIn(BuildInMeta::I16) => return "Short",
            MetaTypeVariant::BuildIn(BuildInMeta::Bool) => return "Boolean",
            MetaTypeVariant::SimpleType(simple) if !simple.is_list => {
                current = simple.base.clone();
            }
            MetaTypeVariant::ComplexType(complex) => match (&complex.base, &complex.content) {
                // simple content (an extension of a simple type)
                (Base::Extension(base), None) => current = base.clone(),
                _ => return "Complex",
            },
            MetaTypeVariant::Sequence(_) | MetaTypeVariant::Choice(_) | MetaTypeVariant::All(_) => {
                return "Complex"
            }
            _ => return "Text",
        }
    }
    "Text"
}

fn collect(types: &MetaTypes, ident: &TypeIdent, entry: &mut Entry, depth: usize) {
    collect_in(
        types,
        ident,
        entry,
        depth,
        Occurs {
            required: true,
            repeats: false,
        },
    );
}

/// `within`: how often the enclosing group may occur (an optional group
/// makes its elements optional; a repeating one makes them repeat).
fn collect_in(
    types: &MetaTypes,
    ident: &TypeIdent,
    entry: &mut Entry,
    depth: usize,
    within: Occurs,
) {
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
                collect_in(types, base, entry, depth + 1, within);
            }
            for attr in complex.attributes.iter() {
                if let AttributeMetaVariant::Type(_) = attr.variant {
                    entry.attributes.push(attr.ident.name.as_str().to_owned());
                }
            }
            if let Some(content) = &complex.content {
                let occurs = Occurs {
                    required: within.required && complex.min_occurs > 0,
                    repeats: within.repeats || complex.max_occurs != MaxOccurs::Bounded(1),
                };
                collect_in(types, content, entry, depth + 1, occurs);
            }
        }
        MetaTypeVariant::Sequence(group)
        | MetaTypeVariant::Choice(group)
        | MetaTypeVariant::All(group) => {
            let is_choice = matches!(meta.variant, MetaTypeVariant::Choice(_));
            for element in group.elements.iter() {
                let occurs = Occurs {
                    // one branch of a choice is never required on its own
                    required: within.required && !is_choice && element.min_occurs > 0,
                    repeats: within.repeats || element.max_occurs != MaxOccurs::Bounded(1),
                };
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
                        entry.occurs.push(occurs);
                    }
                    ElementMetaVariant::Type {
                        type_,
                        mode: ElementMode::Group,
                    } => {
                        collect_in(types, type_, entry, depth + 1, occurs);
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

    // per type: children (namespace, local name, type index, required,
    // repeats), attributes, any content, value kind
    type Row = (
        Vec<(String, String, usize, bool, bool)>,
        Vec<String>,
        bool,
        &'static str,
    );
    let mut rendered: Vec<Row> = Vec::new();
    while let Some(ident) = queue.pop_front() {
        let mut entry = Entry::default();
        collect(types, &ident, &mut entry, 0);
        let children = entry
            .children
            .iter()
            .zip(&entry.occurs)
            .map(|((ns, local, ty), occurs)| {
                (
                    ns.clone(),
                    local.clone(),
                    intern(ty, &mut index, &mut order, &mut queue),
                    occurs.required,
                    occurs.repeats,
                )
            })
            .collect();
        let i = index[&ident];
        if rendered.len() <= i {
            rendered.resize_with(i + 1, Default::default);
        }
        let value = if entry.any_children || !entry.children.is_empty() {
            "Complex"
        } else {
            value_kind(types, &ident)
        };
        rendered[i] = (children, entry.attributes, entry.any_children, value);
    }
    rendered.resize_with(order.len(), || (Vec::new(), Vec::new(), false, "Text"));

    let mut out = String::new();
    out.push_str("pub(crate) static FILTER_SCHEMA: FilterSchema = FilterSchema {\n    types: &[\n");
    // A type's index is its position; children name their type by index.
    for (children, attributes, any, value) in &rendered {
        let _ = write!(out, "    FilterType {{ children: &[");
        for (ns, local, ty, _, _) in children {
            let _ = write!(out, "({ns:?}, {local:?}, {ty}), ");
        }
        out.push_str("], occurs: &[");
        for (_, _, _, required, repeats) in children {
            let _ = write!(
                out,
                "Occurs {{ required: {required}, repeats: {repeats} }}, "
            );
        }
        out.push_str("], attributes: &[");
        for a in attributes {
            let _ = write!(out, "{a:?}, ");
        }
        let _ = writeln!(out, "], any_children: {any}, value: ValueKind::{value} }},");
    }
    out.push_str("    ],\n    roots: &[\n");
    for (ns, name, i) in root_rows {
        let _ = writeln!(out, "        ({ns:?}, {name:?}, {i}),");
    }
    out.push_str("    ],\n};\n");
    Ok(out)
}
