//! Schema transformations applied before xsd-parser sees a schema.
//!
//! * Open enumerations: every enumeration becomes "one of the known values, or
//!   any other string", so that a value a newer server adds (`WorkingElsewhere`
//!   on an old schema, anything after it) parses instead of failing.
//! * Pruning to the project's subset: a server's full schema (`EWS_SCHEMA_DIR`)
//!   is cut down to the elements and attributes that the project's own subset
//!   declares for the same types, so that the bindings have the same shape (the
//!   runtime is written against it) and stay small enough to compile. What the
//!   server schema contributes is its definition of those parts: order,
//!   cardinality, types and enumeration values.

use std::collections::BTreeMap;

use crate::xmldom::{Element, Node};

/// The prefixes (with their colon) of the XML Schema namespace and of the
/// schema's target namespace, as `schema` declares them.
fn prefixes(schema: &Element) -> (String, String) {
    let xs = schema
        .name
        .split_once(':')
        .map(|(p, _)| format!("{p}:"))
        .unwrap_or_default();
    let target = schema.attr("targetNamespace").unwrap_or_default();
    let tns = schema
        .attrs
        .iter()
        .find(|(k, v)| k.starts_with("xmlns:") && v == target)
        .map(|(k, _)| format!("{}:", &k["xmlns:".len()..]))
        .unwrap_or_default();
    (xs, tns)
}

/// Rewrites each enumeration into a union of a named type holding the known
/// values (`<Name>Known`, so that generated names do not depend on the
/// schema's layout) and `xs:string`. `schema` is an `xs:schema` element.
pub fn open_enumerations(schema: &mut Element) {
    let (xs, tns) = prefixes(schema);
    let mut hoisted = Vec::new();
    for decl in schema.elements_mut() {
        if decl.local() != "simpleType" {
            continue;
        }
        let Some(name) = decl.attr("name").map(str::to_owned) else {
            continue;
        };
        let known = format!("{name}Known");
        if let Some(restriction) = take_enumeration(
            decl,
            &format!("{xs}union"),
            &format!("{tns}{known} {xs}string"),
        ) {
            let mut known_type = Element::new(&format!("{xs}simpleType")).with_attr("name", &known);
            known_type.children.push(Node::Element(restriction));
            hoisted.push(known_type);
        }
    }
    schema
        .children
        .extend(hoisted.into_iter().map(Node::Element));
}

/// Finds the (first) simple type at or below `simple_type` that restricts by
/// enumeration, replaces its content with a union and returns the restriction.
fn take_enumeration(simple_type: &mut Element, union_name: &str, members: &str) -> Option<Element> {
    let position = simple_type.children.iter().position(|n| {
        matches!(n, Node::Element(r) if r.local() == "restriction" && r.elements().any(|e| e.local() == "enumeration"))
    });
    if let Some(position) = position {
        let Node::Element(restriction) = std::mem::replace(
            &mut simple_type.children[position],
            Node::Element(Element::new(union_name).with_attr("memberTypes", members)),
        ) else {
            unreachable!("position found an element")
        };
        return Some(restriction);
    }
    simple_type
        .elements_mut()
        .find_map(|child| take_enumeration(child, union_name, members))
}

/// The particles (`element`, `attribute`, `any`, `anyAttribute`) each
/// top-level declaration of a schema holds, by kind and name, with whether the
/// subset makes the particle optional (`minOccurs="0"`).
pub type Particles = BTreeMap<(String, String), BTreeMap<String, bool>>;

fn particle_key(element: &Element) -> Option<String> {
    match element.local() {
        "element" | "attribute" => element
            .attr("name")
            .or_else(|| element.attr("ref"))
            .map(|n| format!("{}:{}", element.local(), local_name(n))),
        "any" | "anyAttribute" => Some(element.local().to_owned()),
        _ => None,
    }
}

fn local_name(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}

/// Collects the particles of every named top-level declaration of `schema`.
pub fn particles(schema: &Element) -> Particles {
    let mut out = Particles::new();
    for decl in schema.elements() {
        let Some(name) = decl.attr("name") else {
            continue;
        };
        let set: BTreeMap<String, bool> = decl
            .descendants()
            .into_iter()
            .filter_map(|p| particle_key(p).map(|k| (k, p.attr("minOccurs") == Some("0"))))
            .collect();
        out.insert((decl.local().to_owned(), name.to_owned()), set);
    }
    out
}

/// Removes from `schema` (a server's) the particles that the subset's
/// declaration of the same name does not have. Declarations the subset does
/// not have are left alone: the generator only reaches them through kept
/// particles.
pub fn prune_to(schema: &mut Element, subset: &Particles) {
    for decl in schema.elements_mut() {
        let Some(name) = decl.attr("name") else {
            continue;
        };
        let key = (decl.local().to_owned(), name.to_owned());
        if let Some(allowed) = subset.get(&key) {
            prune_particles(decl, allowed);
        }
    }
}

/// Keeps the particles the subset has; where the subset makes one optional
/// (servers omit it, e.g. the flags of a private appointment's details), the
/// server's declaration is made optional too.
fn prune_particles(element: &mut Element, allowed: &BTreeMap<String, bool>) {
    element.children.retain(|child| match child {
        Node::Element(e) => particle_key(e).is_none_or(|k| allowed.contains_key(&k)),
        Node::Text(_) => true,
    });
    for child in element.elements_mut() {
        if let Some(true) = particle_key(child).and_then(|k| allowed.get(&k).copied()) {
            child.attrs.retain(|(k, _)| k != "minOccurs");
            child.attrs.push(("minOccurs".into(), "0".into()));
        }
        prune_particles(child, allowed);
    }
}

/// Removes model groups (`choice`, `sequence`, `all`) left without any
/// particle, bottom-up: pruning empties them (a server's `GroupBy` choice
/// when the subset has none), and they would shift generated names.
pub fn remove_empty_groups(element: &mut Element) {
    for child in element.elements_mut() {
        remove_empty_groups(child);
    }
    element.children.retain(|child| match child {
        Node::Element(e) if matches!(e.local(), "choice" | "sequence" | "all") => {
            e.elements().next().is_some()
        }
        _ => true,
    });
}

/// Gives every model group nested in another one a name: it becomes a
/// top-level `xs:group` (`<Type>Choice1`, `<Type>Sequence1`, numbered in
/// document order within the type) referenced where it stood. xsd-parser
/// names anonymous groups by a running counter, which differs between the
/// subset and a server's schema; named groups give both the same Rust names.
pub fn name_nested_groups(schema: &mut Element) {
    let (xs, tns) = prefixes(schema);
    let mut groups = Vec::new();
    for decl in schema.elements_mut() {
        if decl.local() != "complexType" {
            continue;
        }
        let Some(name) = decl.attr("name").map(str::to_owned) else {
            continue;
        };
        let mut counter = BTreeMap::new();
        hoist_groups(decl, &name, &xs, &tns, &mut counter, &mut groups);
    }
    schema
        .children
        .extend(groups.into_iter().map(Node::Element));
}

fn hoist_groups(
    element: &mut Element,
    type_name: &str,
    xs: &str,
    tns: &str,
    counter: &mut BTreeMap<String, usize>,
    groups: &mut Vec<Element>,
) {
    let is_group = |e: &Element| matches!(e.local(), "choice" | "sequence");
    let here_is_group = is_group(element);
    for child in element.children.iter_mut() {
        let Node::Element(e) = child else { continue };
        if here_is_group && is_group(e) {
            let kind = if e.local() == "choice" {
                "Choice"
            } else {
                "Sequence"
            };
            let n = counter.entry(kind.to_owned()).or_insert(0);
            *n += 1;
            let group_name = format!("{type_name}{kind}{n}");
            let mut inner = std::mem::replace(e, Element::new(&format!("{xs}group")));
            let occurs: Vec<(String, String)> = inner
                .attrs
                .iter()
                .filter(|(k, _)| k == "minOccurs" || k == "maxOccurs")
                .cloned()
                .collect();
            inner
                .attrs
                .retain(|(k, _)| k != "minOccurs" && k != "maxOccurs");
            e.attrs.push(("ref".into(), format!("{tns}{group_name}")));
            e.attrs.extend(occurs);
            hoist_groups(&mut inner, type_name, xs, tns, counter, groups);
            let mut group = Element::new(&format!("{xs}group")).with_attr("name", &group_name);
            group.children.push(Node::Element(inner));
            groups.push(group);
        } else {
            hoist_groups(e, type_name, xs, tns, counter, groups);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::xmldom;

    #[test]
    fn enumeration_becomes_union_with_string() {
        let mut schema = xmldom::parse(
            r#"<xs:schema xmlns:xs="x" xmlns:t="urn:t" targetNamespace="urn:t"><xs:simpleType name="E"><xs:restriction base="xs:string"><xs:enumeration value="A"/></xs:restriction></xs:simpleType></xs:schema>"#,
        )
        .unwrap();
        open_enumerations(&mut schema);
        let out = xmldom::write(&schema);
        assert!(
            out.contains(r#"<xs:union memberTypes="t:EKnown xs:string"/>"#),
            "{out}"
        );
        assert!(out.contains(r#"<xs:simpleType name="EKnown">"#), "{out}");
        assert!(out.contains(r#"<xs:enumeration value="A"/>"#), "{out}");
    }

    #[test]
    fn nested_groups_get_names_from_their_type() {
        let mut schema = xmldom::parse(
            r#"<xs:schema xmlns:xs="x" xmlns:t="urn:t" targetNamespace="urn:t"><xs:complexType name="T"><xs:sequence><xs:element name="A"/><xs:choice minOccurs="0"><xs:element name="B"/><xs:element name="C"/></xs:choice></xs:sequence></xs:complexType></xs:schema>"#,
        )
        .unwrap();
        name_nested_groups(&mut schema);
        let out = xmldom::write(&schema);
        assert!(
            out.contains(r#"<xs:group ref="t:TChoice1" minOccurs="0"/>"#),
            "{out}"
        );
        assert!(out.contains(r#"<xs:group name="TChoice1">"#), "{out}");
    }

    #[test]
    fn groups_emptied_by_pruning_are_removed() {
        let mut schema = xmldom::parse(
            r#"<xs:schema xmlns:xs="x"><xs:complexType name="T"><xs:sequence><xs:element name="A"/><xs:choice minOccurs="0"/></xs:sequence></xs:complexType></xs:schema>"#,
        )
        .unwrap();
        remove_empty_groups(&mut schema);
        assert!(!xmldom::write(&schema).contains("choice"));
    }

    #[test]
    fn pruning_keeps_only_the_subset_particles() {
        let subset = xmldom::parse(
            r#"<xs:schema xmlns:xs="x"><xs:complexType name="T"><xs:sequence><xs:element name="A" type="xs:string"/></xs:sequence></xs:complexType></xs:schema>"#,
        )
        .unwrap();
        let mut server = xmldom::parse(
            r#"<xs:schema xmlns:xs="x"><xs:complexType name="T"><xs:sequence><xs:element name="A" type="xs:string"/><xs:element name="B" type="xs:int"/></xs:sequence><xs:attribute name="C"/></xs:complexType><xs:complexType name="U"><xs:sequence><xs:element name="Z"/></xs:sequence></xs:complexType></xs:schema>"#,
        )
        .unwrap();
        prune_to(&mut server, &particles(&subset));
        let out = xmldom::write(&server);
        assert!(out.contains(r#"name="A""#));
        assert!(!out.contains(r#"name="B""#), "{out}");
        assert!(!out.contains(r#"name="C""#), "{out}");
        assert!(
            out.contains(r#"name="Z""#),
            "declarations outside the subset stay: {out}"
        );
    }
}
