//! ews-toolkit-codegen: turns the project's EWS WSDL + XSD (or a server's, restricted
//! to the project's operations) into Rust.
//!
//! * types: xsd-parser with its quick-xml serializer and deserializer, limited
//!   to what the operations reach;
//! * operations: read from the WSDL (xsd-parser does not read WSDL): one
//!   marker type per operation with its SOAPAction, body elements and headers;
//! * the filter table the runtime uses to drop content the schema does not
//!   declare before deserializing.
//!
//! Output is deterministic: the same input gives the same bytes. Every file
//! is formatted with `prettyplease` and starts with a banner that names its
//! inputs and this generator: the code is read and debugged, never edited.

mod table;
mod transform;
mod wsdl;
mod xmldom;

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use xsd_parser::config::{
    GeneratorFlags, InterpreterFlags, NamespaceIdent, OptimizerFlags, ParserFlags, Resolver, Schema,
};
use xsd_parser::{Config, IdentType};

pub use wsdl::{Header, Operation, QName};

/// The EWS service description files, in the layout Exchange serves them.
pub const SCHEMA_FILES: [&str; 3] = ["Services.wsdl", "messages.xsd", "types.xsd"];

/// The autodiscover service descriptions in the subset folder.
pub const AUTODISCOVER_WSDL: &str = "Autodiscover.wsdl";
pub const AUTODISCOVER_SCHEMA_FILES: [&str; 5] = [
    "autodiscover.xsd",
    "addressing.xsd",
    "pox-request.xsd",
    "pox-response.xsd",
    "pox-response-outlook.xsd",
];
/// The roots of the POX autodiscover request and response documents.
pub const POX_ROOTS: [(&str, &str); 2] = [
    (
        "http://schemas.microsoft.com/exchange/autodiscover/outlook/requestschema/2006",
        "Autodiscover",
    ),
    (
        "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006",
        "Autodiscover",
    ),
];

pub struct Options {
    /// The project's own subset (`wsdl/`): decides the operations and, when
    /// `schema_dir` is set, the parts of the server schema that are kept.
    pub subset_dir: PathBuf,
    /// A server's schema (`EWS_SCHEMA_DIR`) to generate from instead.
    pub schema_dir: Option<PathBuf>,
    pub out_dir: PathBuf,
}

/// What `generate` wrote.
pub struct Generated {
    pub types: PathBuf,
    pub operations: PathBuf,
    pub filter_table: PathBuf,
    /// The files read, for `cargo:rerun-if-changed`.
    pub inputs: Vec<PathBuf>,
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("cannot read {}: {e}", path.display()))
}

fn parse(path: &Path) -> Result<xmldom::Element, String> {
    xmldom::parse(&read(path)?).map_err(|e| format!("{}: {e}", path.display()))
}

pub fn generate(options: &Options) -> Result<Generated, String> {
    let subset = |f: &str| options.subset_dir.join(f);
    let source_dir = options.schema_dir.as_deref().unwrap_or(&options.subset_dir);
    let source = |f: &str| source_dir.join(f);
    let mut inputs: Vec<PathBuf> = SCHEMA_FILES.iter().map(|f| subset(f)).collect();
    if options.schema_dir.is_some() {
        inputs.extend(SCHEMA_FILES.iter().map(|f| source(f)));
    }

    // Schemas: prune a server's to the subset, open every enumeration.
    let schema_out = options.out_dir.join("ews-schema");
    std::fs::create_dir_all(&schema_out).map_err(|e| format!("{}: {e}", schema_out.display()))?;
    for file in ["messages.xsd", "types.xsd"] {
        let mut schema = parse(&source(file))?;
        if options.schema_dir.is_some() {
            let ours = parse(&subset(file))?;
            transform::prune_to(&mut schema, &transform::particles(&ours));
        }
        transform::remove_empty_groups(&mut schema);
        transform::name_nested_groups(&mut schema);
        transform::open_enumerations(&mut schema);
        // The xml namespace import (xml:lang) needs a local schema; the
        // subset does not reach it, so an empty stand-in is enough.
        for import in schema.elements_mut().filter(|e| e.local() == "import") {
            if import.attr("namespace") == Some("http://www.w3.org/XML/1998/namespace") {
                for (k, v) in import.attrs.iter_mut() {
                    if k == "schemaLocation" {
                        *v = "xml.xsd".to_owned();
                    }
                }
            }
        }
        write(&schema_out.join(file), &xmldom::write(&schema))?;
    }
    // The `xml` namespace's attributes (xml:lang) that Exchange's types.xsd
    // imports, declared locally so that nothing is fetched.
    write(
        &schema_out.join("xml.xsd"),
        concat!(
            "<xs:schema xmlns:xs=\"http://www.w3.org/2001/XMLSchema\" ",
            "targetNamespace=\"http://www.w3.org/XML/1998/namespace\">\n",
            "  <xs:attribute name=\"lang\" type=\"xs:language\"/>\n",
            "  <xs:attribute name=\"space\" type=\"xs:NCName\"/>\n",
            "  <xs:attribute name=\"base\" type=\"xs:anyURI\"/>\n",
            "  <xs:attribute name=\"id\" type=\"xs:ID\"/>\n",
            "</xs:schema>\n"
        ),
    )?;

    // Operations: the subset names them, the source's WSDL describes them.
    let ours = wsdl::operations(&parse(&subset("Services.wsdl"))?, None)?;
    let names: Vec<String> = ours.iter().map(|o| o.name.clone()).collect();
    let operations = wsdl::operations(&parse(&source("Services.wsdl"))?, Some(&names))
        .map_err(|e| format!("{}: {e}", source("Services.wsdl").display()))?;

    let mut roots: Vec<QName> = Vec::new();
    for op in &operations {
        let headers = op
            .input_headers
            .iter()
            .chain(&op.output_headers)
            .map(|h| &h.element);
        for name in [&op.request, &op.response].into_iter().chain(headers) {
            if !roots.contains(name) {
                roots.push(name.clone());
            }
        }
    }

    let (types_code, table_code) = generate_types(&[schema_out.join("messages.xsd")], &roots)?;
    let generated = Generated {
        types: options.out_dir.join("ews_types.rs"),
        operations: options.out_dir.join("ews_operations.rs"),
        filter_table: options.out_dir.join("ews_filter_table.rs"),
        inputs,
    };
    let subset_files = SCHEMA_FILES.map(|f| subset_name(&options.subset_dir, f));
    let sources = match &options.schema_dir {
        Some(dir) => format!(
            "EWS_SCHEMA_DIR={} ({}), restricted to {}",
            dir.display(),
            SCHEMA_FILES.join(", "),
            subset_files.join(", ")
        ),
        None => subset_files.join(", "),
    };
    write_rust(&generated.types, &sources, &types_code)?;
    write_rust(
        &generated.operations,
        &sources,
        &render_operations(&operations),
    )?;
    write_rust(&generated.filter_table, &sources, &table_code)?;

    let mut generated = generated;
    generated.inputs.extend(generate_autodiscover(
        &options.subset_dir,
        &schema_out,
        &options.out_dir,
    )?);
    Ok(generated)
}

/// Autodiscover is described by the project only (Exchange does not publish
/// its schema with the EWS one). Element names repeat across its namespaces
/// (`Autodiscover` is the root of both POX documents), so each family is
/// generated on its own, into its own module with its own filter table:
/// `autodiscover_*` (SOAP GetUserSettings), `pox_request_*`, `pox_response_*`.
fn generate_autodiscover(
    subset_dir: &Path,
    schema_out: &Path,
    out_dir: &Path,
) -> Result<Vec<PathBuf>, String> {
    let mut inputs = vec![subset_dir.join(AUTODISCOVER_WSDL)];
    let name = |f: &str| subset_name(subset_dir, f);
    for file in AUTODISCOVER_SCHEMA_FILES {
        let path = subset_dir.join(file);
        let mut schema = parse(&path)?;
        transform::remove_empty_groups(&mut schema);
        transform::name_nested_groups(&mut schema);
        transform::open_enumerations(&mut schema);
        write(&schema_out.join(file), &xmldom::write(&schema))?;
        inputs.push(path);
    }

    let operations = wsdl::operations(&parse(&subset_dir.join(AUTODISCOVER_WSDL))?, None)?;
    let mut roots: Vec<QName> = Vec::new();
    for op in &operations {
        let headers = op
            .input_headers
            .iter()
            .chain(&op.output_headers)
            .map(|h| &h.element);
        for name in [&op.request, &op.response].into_iter().chain(headers) {
            if !roots.contains(name) {
                roots.push(name.clone());
            }
        }
    }
    let soap_files = [
        schema_out.join("autodiscover.xsd"),
        schema_out.join("addressing.xsd"),
    ];
    let (types, table) = generate_types(&soap_files, &roots)?;
    let sources = [AUTODISCOVER_WSDL, "autodiscover.xsd", "addressing.xsd"]
        .map(name)
        .join(", ");
    write_rust(&out_dir.join("autodiscover_types.rs"), &sources, &types)?;
    write_rust(
        &out_dir.join("autodiscover_filter_table.rs"),
        &sources,
        &table,
    )?;
    write_rust(
        &out_dir.join("autodiscover_operations.rs"),
        &sources,
        &render_operations(&operations),
    )?;

    for (family, file, (namespace, local)) in [
        ("pox_request", "pox-request.xsd", POX_ROOTS[0]),
        ("pox_response", "pox-response.xsd", POX_ROOTS[1]),
    ] {
        let root = QName {
            namespace: namespace.to_owned(),
            local: local.to_owned(),
        };
        let (types, table) = generate_types(&[schema_out.join(file)], &[root])?;
        let sources = subset_name(subset_dir, file);
        write_rust(
            &out_dir.join(format!("{family}_types.rs")),
            &sources,
            &types,
        )?;
        write_rust(
            &out_dir.join(format!("{family}_filter_table.rs")),
            &sources,
            &table,
        )?;
    }
    Ok(inputs)
}

/// `file` of the subset folder as the banner names it (`wsdl/types.xsd`):
/// relative, so that the output does not depend on where the checkout is.
fn subset_name(subset_dir: &Path, file: &str) -> String {
    let folder = subset_dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_else(|| subset_dir.display().to_string());
    format!("{folder}/{file}")
}

/// Writes generated Rust `code` to `path`, formatted, after a banner naming
/// `sources` and this generator.
fn write_rust(path: &Path, sources: &str, code: &str) -> Result<(), String> {
    let file = syn::parse_file(code).map_err(|e| {
        format!(
            "the code generated for {} does not parse ({e}); this is a bug in {}",
            path.display(),
            env!("CARGO_PKG_NAME")
        )
    })?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let banner = format!(
        "// @generated {name}: generated by {} {} (the build script of ews-toolkit)\n\
         // from {sources}.\n\
         // Do not edit: change the schema or the generator, and build again.\n\n",
        env!("CARGO_PKG_NAME"),
        env!("CARGO_PKG_VERSION"),
    );
    write(path, &(banner + &prettyplease::unparse(&file)))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    // Unchanged output keeps its timestamp, so cargo does not rebuild.
    if std::fs::read_to_string(path).is_ok_and(|old| old == text) {
        return Ok(());
    }
    std::fs::write(path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))
}

fn generate_types(schema_files: &[PathBuf], roots: &[QName]) -> Result<(String, String), String> {
    let mut config = Config::default();
    config.parser.resolver = vec![Resolver::File];
    config.parser.flags = ParserFlags::RESOLVE_INCLUDES | ParserFlags::DEFAULT_NAMESPACES;
    config.parser.schemas = schema_files.iter().cloned().map(Schema::File).collect();
    config.interpreter.flags = InterpreterFlags::BUILDIN_TYPES
        | InterpreterFlags::DEFAULT_TYPEDEFS
        | InterpreterFlags::WITH_XS_ANY_TYPE;
    config.optimizer.flags = OptimizerFlags::RESOLVE_TYPEDEFS
        | OptimizerFlags::REMOVE_DUPLICATE_UNION_VARIANTS
        | OptimizerFlags::REMOVE_EMPTY_ENUM_VARIANTS
        | OptimizerFlags::USE_UNRESTRICTED_BASE_TYPE_SIMPLE;
    config.generator.flags = GeneratorFlags::FLATTEN_CONTENT;
    let generate: Vec<(IdentType, NamespaceIdent, String)> = roots
        .iter()
        .map(|q| {
            (
                IdentType::Element,
                NamespaceIdent::namespace(q.namespace.as_bytes().to_vec()),
                q.local.clone(),
            )
        })
        .collect();
    // EWS has both `EmailAddress` and `EmailAddressType` (and more such
    // pairs): no type postfix, and a postfix on elements, keeps them apart.
    let config = config
        .with_generate(generate)
        .with_type_postfix("")
        .with_element_postfix("Element")
        .with_derive(["Debug", "Clone", "PartialEq"])
        .with_quick_xml();

    let schemas = xsd_parser::exec_parser(config.parser).map_err(|e| e.to_string())?;
    let (meta_types, ident_cache) =
        xsd_parser::exec_interpreter_with_ident_cache(config.interpreter, &schemas)
            .map_err(|e| e.to_string())?;
    let root_names: Vec<(String, String)> = roots
        .iter()
        .map(|q| (q.namespace.clone(), q.local.clone()))
        .collect();
    let table = table::render(&meta_types, &root_names)?;
    let meta_types =
        xsd_parser::exec_optimizer(config.optimizer, meta_types).map_err(|e| e.to_string())?;
    let data_types = xsd_parser::exec_generator_with_ident_cache(
        config.generator,
        &schemas,
        Some(&ident_cache),
        &meta_types,
    )
    .map_err(|e| e.to_string())?;
    let module =
        xsd_parser::exec_render(config.renderer, &data_types).map_err(|e| e.to_string())?;
    let code = quote::ToTokens::to_token_stream(&module).to_string();
    Ok((code, table))
}

fn rust_name(element: &QName) -> String {
    format!("{}Element", element.local)
}

fn render_operations(operations: &[Operation]) -> String {
    let mut out = String::new();
    let qname = |q: &QName| {
        format!(
            "QName {{ namespace: {:?}, local: {:?} }}",
            q.namespace, q.local
        )
    };
    let headers = |hs: &[Header]| {
        hs.iter()
            .map(|h| qname(&h.element))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for op in operations {
        let _ = write!(
            out,
            "/// The `{name}` operation.\n#[derive(Debug, Clone, Copy)]\npub struct {name};\n\
             impl Operation for {name} {{\n\
             \x20   type Request = types::{req};\n\
             \x20   type Response = types::{resp};\n\
             \x20   const NAME: &'static str = {name:?};\n\
             \x20   const SOAP_ACTION: &'static str = {action:?};\n\
             \x20   const REQUEST_ELEMENT: QName = {req_q};\n\
             \x20   const RESPONSE_ELEMENT: QName = {resp_q};\n\
             \x20   const INPUT_HEADERS: &'static [QName] = &[{in_h}];\n\
             \x20   const OUTPUT_HEADERS: &'static [QName] = &[{out_h}];\n\
             \x20   const FILTER: &'static FilterSchema = &FILTER_SCHEMA;\n\
             }}\n\
             impl Sealed for {name} {{}}\n\n",
            name = op.name,
            req = rust_name(&op.request),
            resp = rust_name(&op.response),
            action = op.soap_action,
            req_q = qname(&op.request),
            resp_q = qname(&op.response),
            in_h = headers(&op.input_headers),
            out_h = headers(&op.output_headers),
        );
    }
    out.push_str(
        "/// The names of the generated operations.\npub const OPERATION_NAMES: &[&str] = &[",
    );
    for op in operations {
        let _ = write!(out, "{:?}, ", op.name);
    }
    out.push_str("];\n");
    out
}
