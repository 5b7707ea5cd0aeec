//! Generates the EWS bindings into OUT_DIR from `wsdl/` (or, with
//! `EWS_SCHEMA_DIR`, from a server's own Services.wsdl/messages.xsd/types.xsd,
//! restricted to the operations and parts in `wsdl/`).

use std::path::PathBuf;

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    println!("cargo:rerun-if-env-changed=EWS_SCHEMA_DIR");
    let schema_dir = std::env::var_os("EWS_SCHEMA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(dir) = &schema_dir {
        for file in ews_codegen::SCHEMA_FILES {
            if !dir.join(file).is_file() {
                panic!(
                    "EWS_SCHEMA_DIR={} has no {file}: download Services.wsdl, messages.xsd and types.xsd \
                     from https://<your-exchange-server>/ews/ into that folder, or unset EWS_SCHEMA_DIR",
                    dir.display()
                );
            }
        }
    }
    let options = ews_codegen::Options {
        subset_dir: manifest.join("wsdl"),
        schema_dir,
        out_dir,
    };
    match ews_codegen::generate(&options) {
        Ok(generated) => {
            for input in generated.inputs {
                println!("cargo:rerun-if-changed={}", input.display());
            }
        }
        Err(e) => panic!("generating the EWS bindings failed: {e}"),
    }
}
