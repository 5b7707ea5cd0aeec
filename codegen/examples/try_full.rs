use xsd_parser::config::{
    GeneratorFlags, InterpreterFlags, NamespaceIdent, OptimizerFlags, ParserFlags, Resolver, Schema,
};
use xsd_parser::{Config, IdentType};
fn main() {
    let dir = std::path::PathBuf::from(std::env::args().nth(1).unwrap());
    let mut config = Config::default();
    config.parser.resolver = vec![Resolver::File];
    config.parser.flags = ParserFlags::RESOLVE_INCLUDES | ParserFlags::DEFAULT_NAMESPACES;
    config.parser.schemas = vec![Schema::File(
        dir.join("messages.xsd").canonicalize().unwrap(),
    )];
    config.interpreter.flags = InterpreterFlags::BUILDIN_TYPES
        | InterpreterFlags::DEFAULT_TYPEDEFS
        | InterpreterFlags::WITH_XS_ANY_TYPE;
    config.optimizer.flags = OptimizerFlags::RESOLVE_TYPEDEFS
        | OptimizerFlags::REMOVE_DUPLICATE_UNION_VARIANTS
        | OptimizerFlags::REMOVE_EMPTY_ENUM_VARIANTS
        | OptimizerFlags::USE_UNRESTRICTED_BASE_TYPE_SIMPLE;
    config.generator.flags = GeneratorFlags::FLATTEN_CONTENT;
    let m = "http://schemas.microsoft.com/exchange/services/2006/messages";
    let t = "http://schemas.microsoft.com/exchange/services/2006/types";
    let roots: Vec<(IdentType, NamespaceIdent, String)> = std::env::args()
        .skip(2)
        .map(|a| {
            let (p, n) = a.split_once(':').unwrap();
            (
                IdentType::Element,
                NamespaceIdent::namespace(if p == "m" { m } else { t }.as_bytes().to_vec()),
                n.to_string(),
            )
        })
        .collect();
    let config = config
        .with_generate(roots)
        .with_type_postfix("")
        .with_element_postfix("Element")
        .with_quick_xml();
    let code = xsd_parser::generate(config).unwrap();
    println!("{code}");
}
