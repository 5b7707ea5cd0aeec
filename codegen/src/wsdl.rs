//! Reads the operations of a WSDL 1.1 document with a SOAP 1.1 binding:
//! what xsd-parser does not do. For each operation: its SOAPAction, the root
//! element of its request and response bodies (named by the message parts,
//! which are not uniform in EWS), and the headers it allows.

use std::collections::BTreeMap;

use crate::xmldom::Element;

/// A namespace-qualified element name.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct QName {
    pub namespace: String,
    pub local: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The WSDL part name (`RequestVersion`).
    pub part: String,
    pub element: QName,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Operation {
    pub name: String,
    pub soap_action: String,
    pub request: QName,
    pub response: QName,
    pub input_headers: Vec<Header>,
    pub output_headers: Vec<Header>,
}

struct Message {
    parts: BTreeMap<String, QName>,
}

/// The operations of `wsdl` that the SOAP binding describes, in binding
/// order; with `only`, just those named (an error names any that is missing).
pub fn operations(wsdl: &Element, only: Option<&[String]>) -> Result<Vec<Operation>, String> {
    let namespaces: BTreeMap<&str, &str> = wsdl
        .attrs
        .iter()
        .filter_map(|(k, v)| k.strip_prefix("xmlns:").map(|p| (p, v.as_str())))
        .collect();
    let resolve = |qname: &str| -> Result<QName, String> {
        let (prefix, local) = qname
            .split_once(':')
            .ok_or_else(|| format!("unqualified name {qname:?} in the WSDL"))?;
        let namespace = namespaces
            .get(prefix)
            .ok_or_else(|| format!("undeclared prefix {prefix:?} in the WSDL"))?;
        Ok(QName {
            namespace: (*namespace).to_owned(),
            local: local.to_owned(),
        })
    };

    let mut messages = BTreeMap::new();
    for message in wsdl.elements().filter(|e| e.local() == "message") {
        let name = message.attr("name").ok_or("wsdl:message without a name")?;
        let mut parts = BTreeMap::new();
        for part in message.elements().filter(|e| e.local() == "part") {
            let part_name = part.attr("name").ok_or("wsdl:part without a name")?;
            let element = part
                .attr("element")
                .ok_or_else(|| format!("part {name}/{part_name} has no element"))?;
            parts.insert(part_name.to_owned(), resolve(element)?);
        }
        messages.insert(name.to_owned(), Message { parts });
    }

    let mut port_ops = BTreeMap::new();
    for port_type in wsdl.elements().filter(|e| e.local() == "portType") {
        for op in port_type.elements().filter(|e| e.local() == "operation") {
            let name = op.attr("name").ok_or("portType operation without a name")?;
            let message_of = |dir: &str| -> Result<String, String> {
                let m = op
                    .elements()
                    .find(|e| e.local() == dir)
                    .and_then(|e| e.attr("message"))
                    .ok_or_else(|| format!("operation {name} has no {dir} message"))?;
                Ok(local_of(m).to_owned())
            };
            port_ops.insert(
                name.to_owned(),
                (message_of("input")?, message_of("output")?),
            );
        }
    }

    let mut out = Vec::new();
    let binding = wsdl
        .elements()
        .find(|e| e.local() == "binding")
        .ok_or("the WSDL has no binding")?;
    for op in binding.elements().filter(|e| e.local() == "operation") {
        let name = op.attr("name").ok_or("binding operation without a name")?;
        if only.is_some_and(|only| !only.iter().any(|o| o == name)) {
            continue;
        }
        let soap_action = op
            .elements()
            .find(|e| e.local() == "operation")
            .and_then(|e| e.attr("soapAction"))
            .ok_or_else(|| format!("operation {name} has no soapAction"))?;
        let (input_msg, output_msg) = port_ops
            .get(name)
            .ok_or_else(|| format!("operation {name} is bound but not in the port type"))?;
        let direction = |dir: &str, default_msg: &str| -> Result<(QName, Vec<Header>), String> {
            let section = op
                .elements()
                .find(|e| e.local() == dir)
                .ok_or_else(|| format!("operation {name} has no {dir} binding"))?;
            let message = messages
                .get(default_msg)
                .ok_or_else(|| format!("message {default_msg} is not defined"))?;
            let body_part = section
                .elements()
                .find(|e| e.local() == "body")
                .and_then(|b| b.attr("parts"))
                .map(str::to_owned)
                .or_else(|| {
                    (message.parts.len() == 1)
                        .then(|| message.parts.keys().next().cloned())
                        .flatten()
                })
                .ok_or_else(|| format!("operation {name}: {dir} body names no part"))?;
            let body = message
                .parts
                .get(&body_part)
                .ok_or_else(|| format!("operation {name}: no part {body_part} in {default_msg}"))?
                .clone();
            let mut headers: Vec<Header> = Vec::new();
            for header in section.elements().filter(|e| e.local() == "header") {
                let msg_name = local_of(header.attr("message").unwrap_or(default_msg));
                let part = header.attr("part").ok_or("soap:header without a part")?;
                let msg = messages
                    .get(msg_name)
                    .ok_or_else(|| format!("message {msg_name} is not defined"))?;
                let element = msg
                    .parts
                    .get(part)
                    .ok_or_else(|| format!("operation {name}: no part {part} in {msg_name}"))?
                    .clone();
                // Exchange's own WSDL lists some headers twice.
                if !headers.iter().any(|h| h.part == part) {
                    headers.push(Header {
                        part: part.to_owned(),
                        element,
                    });
                }
            }
            Ok((body, headers))
        };
        let (request, input_headers) = direction("input", input_msg)?;
        let (response, output_headers) = direction("output", output_msg)?;
        out.push(Operation {
            name: name.to_owned(),
            soap_action: soap_action.to_owned(),
            request,
            response,
            input_headers,
            output_headers,
        });
    }
    if let Some(only) = only {
        for wanted in only {
            if !out.iter().any(|o| &o.name == wanted) {
                return Err(format!("the WSDL has no SOAP-bound operation {wanted}"));
            }
        }
    }
    Ok(out)
}

fn local_of(qname: &str) -> &str {
    qname.rsplit(':').next().unwrap_or(qname)
}
