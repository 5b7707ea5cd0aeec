//! Generates the EWS bindings into OUT_DIR from `wsdl/` (or, with
//! `EWS_SCHEMA_DIR`, from a server's own Services.wsdl/messages.xsd/types.xsd,
//! restricted to the operations and parts in `wsdl/`).

use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var_os("CARGO_MANIFEST_DIR").expect("set by cargo"));
    let out_dir = PathBuf::from(std::env::var_os("OUT_DIR").expect("set by cargo"));
    bindings(&manifest, &out_dir);
}

fn bindings(manifest: &Path, out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=EWS_SCHEMA_DIR");
    let schema_dir = std::env::var_os("EWS_SCHEMA_DIR")
        .filter(|v| !v.is_empty())
        .map(PathBuf::from);
    if let Some(dir) = &schema_dir {
        for file in ews_toolkit_codegen::SCHEMA_FILES {
            if !dir.join(file).is_file() {
                panic!(
                    "EWS_SCHEMA_DIR={} has no {file}: download Services.wsdl, messages.xsd and types.xsd \
                     from https://<your-exchange-server>/ews/ into that folder, or unset EWS_SCHEMA_DIR",
                    dir.display()
                );
            }
        }
    }
    // The bindings are generated again only when their inputs or this
    // script changed, whatever else made cargo rerun it.
    let stamp = codegen_stamp::Stamp::new(out_dir, schema_dir.as_deref());
    if let Some(inputs) = stamp.unchanged_inputs() {
        for input in inputs {
            println!("cargo:rerun-if-changed={}", input.display());
        }
        return;
    }
    let options = ews_toolkit_codegen::Options {
        subset_dir: manifest.join("wsdl"),
        schema_dir,
        out_dir: out_dir.to_owned(),
    };
    match ews_toolkit_codegen::generate(&options) {
        Ok(generated) => {
            for input in &generated.inputs {
                println!("cargo:rerun-if-changed={}", input.display());
            }
            stamp.write(&generated.inputs);
        }
        Err(e) => panic!("generating the EWS bindings failed: {e}"),
    }
}

/// Remembers what the bindings in OUT_DIR were generated from: this build
/// script's own binary (it changes with the codegen crate), `EWS_SCHEMA_DIR`
/// and each input's size and modification time.
mod codegen_stamp {
    use std::path::{Path, PathBuf};

    pub struct Stamp {
        file: PathBuf,
        header: String,
    }

    fn fingerprint(path: &Path) -> Option<String> {
        let meta = std::fs::metadata(path).ok()?;
        let modified = meta
            .modified()
            .ok()?
            .duration_since(std::time::UNIX_EPOCH)
            .ok()?;
        Some(format!("{} {}", meta.len(), modified.as_nanos()))
    }

    impl Stamp {
        pub fn new(out_dir: &Path, schema_dir: Option<&Path>) -> Stamp {
            let script = std::env::current_exe()
                .ok()
                .and_then(|exe| fingerprint(&exe))
                .unwrap_or_default();
            Stamp {
                file: out_dir.join("codegen.stamp"),
                header: format!("script {script}\nschema {schema_dir:?}\n"),
            }
        }

        /// The inputs, when the stamp matches all of them.
        pub fn unchanged_inputs(&self) -> Option<Vec<PathBuf>> {
            let text = std::fs::read_to_string(&self.file).ok()?;
            let rest = text.strip_prefix(&self.header)?;
            let mut inputs = Vec::new();
            for line in rest.lines() {
                let (print, path) = line.split_once('\t')?;
                let path = PathBuf::from(path);
                if fingerprint(&path).as_deref() != Some(print) {
                    return None;
                }
                inputs.push(path);
            }
            (!inputs.is_empty()).then_some(inputs)
        }

        pub fn write(&self, inputs: &[PathBuf]) {
            let mut text = self.header.clone();
            for input in inputs {
                let Some(print) = fingerprint(input) else {
                    // Without a fingerprint the next run generates again.
                    let _ = std::fs::remove_file(&self.file);
                    return;
                };
                text.push_str(&format!("{print}\t{}\n", input.display()));
            }
            if let Err(e) = std::fs::write(&self.file, text) {
                println!("cargo:warning=cannot write {}: {e}", self.file.display());
            }
        }
    }
}
